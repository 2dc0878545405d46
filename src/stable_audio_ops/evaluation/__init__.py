"""Offline, model-independent judges for the autoencoder and for generated notes.

Why several judges: a distribution distance cannot see a wrong pitch, and a pitch tracker gives a pure
sine full marks. So generation is judged on pitch accuracy (CREPE-tiny, cross-checked by a numpy
autocorrelation), KID/FD on an embedding whose weights ship in a wheel (aiSFX), and caption adherence
(a linear probe trained on real clips); real clips (ceiling) and noise (floor) are judged beside the
model so each number has a range. Reconstruction is judged by multi-resolution STFT distance, log-mel
distance and SI-SDR.

Nothing here downloads at run time. Heavy imports (torchcrepe, aisfx, scikit-learn) happen inside the
functions that need them, so importing this package stays cheap.
"""
