"""The API documentation: /docs and /redoc work without internet, and the OpenAPI schema says what each route
takes and answers (examples, response models, the bearer token, the error codes)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from stable_audio_ops.serving.app import create_app
from stable_audio_ops.serving.settings import ServeSettings

V1_ROUTES = {("/v1/models", "get"), ("/v1/generate", "post"), ("/v1/jobs", "post"), ("/v1/jobs/{job_id}", "get"),
             ("/v1/jobs/{job_id}", "delete"), ("/v1/jobs/{job_id}/audio", "get"),
             ("/v1/jobs/{job_id}/spectrogram.png", "get"), ("/v1/stats", "get")}


@pytest.fixture(scope="module")
def app():
    """No model is needed for the documentation (the load fails in the background; the docs still answer)."""
    return create_app(ServeSettings(model="/nonexistent/model.safetensors"))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_only_local_assets(app, page):
    with TestClient(app) as client:
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^'"]+)['"]""", html.text)
        urls = [u for pair in urls for u in pair if u]
        assert urls, html.text
        assert not [u for u in urls if "//" in u], f"{page} loads from another host: {urls}"
        scripts = [u for u in urls if u.endswith(".js")]
        assert scripts
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200, url
        for url in scripts:
            asset = client.get(url)
            assert "javascript" in asset.headers["content-type"] and len(asset.content) > 100_000, url


def test_schema_documents_security_examples_models_and_errors(app):
    schema = app.openapi()
    scheme = schema["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and "SAO_API_TOKEN" in scheme["description"]
    paths = schema["paths"]
    for path, method in V1_ROUTES:
        operation = paths[path][method]
        assert operation["security"] == [{"HTTPBearer": []}], (path, method)
        assert "401" in operation["responses"], (path, method)
    for path in ("/v1/generate", "/v1/jobs"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]
        examples = body["examples"]
        assert examples and all("prompt" in e["value"] for e in examples.values())
        assert "503" in paths[path]["post"]["responses"]
    assert "500" in paths["/v1/generate"]["post"]["responses"]
    for path in ("/v1/jobs/{job_id}/audio", "/v1/jobs/{job_id}/spectrogram.png"):
        assert {"404", "409"} <= set(paths[path]["get"]["responses"])
    assert "404" in paths["/v1/jobs/{job_id}"]["get"]["responses"]
    assert "404" in paths["/v1/jobs/{job_id}"]["delete"]["responses"]
    retry = paths["/v1/generate"]["post"]["responses"]["503"]
    assert "Retry-After" in retry["headers"]

    def ref(path, method, code):
        content = paths[path][method]["responses"][code]["content"]["application/json"]["schema"]
        return content["$ref"].rsplit("/", 1)[-1]

    assert ref("/v1/jobs/{job_id}", "get", "200") == "JobView"
    assert ref("/v1/jobs", "post", "202") == "JobView"
    assert ref("/v1/models", "get", "200") == "ModelList"
    assert ref("/v1/stats", "get", "200") == "Stats"
    assert ref("/v1/jobs/{job_id}/audio", "get", "409") == "ErrorDetail"
    job_fields = schema["components"]["schemas"]["JobView"]["properties"]
    assert {"progress", "eta_s", "spectrogram_urls", "audio_urls"} <= set(job_fields)
    stats = schema["components"]["schemas"]["Stats"]
    assert "abandoned_calls" in stats["properties"]["batcher"]["description"]
