"""/v1/embeddings (official openai client and httpx), /embed, /v1/models, /health and /metrics on the real
server with the default model: every embedding equals offline SentenceEncoder.encode within 1e-6."""
from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai

SENTENCES = ["A man is eating food.", "A cheetah chases its prey across the field.", "", "Short.",
             "CPU inference can be fast when the kernels are packed and fused and the batches carry no padding."]


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_openai_client_embeddings_equal_offline_encode(embedding_server, encoder):
    expected = encoder.encode(SENTENCES)
    for encoding_format in ("float", "base64"):
        result = client(embedding_server).embeddings.create(model="all-MiniLM-L6-v2", input=SENTENCES,
                                                            encoding_format=encoding_format)
        if encoding_format == "base64":  # the client returns base64 strings as they came
            got = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in result.data])
        else:
            got = np.array([d.embedding for d in result.data], np.float32)
        assert [d.index for d in result.data] == list(range(len(SENTENCES)))
        assert np.abs(got - expected).max() <= 1e-6
        assert result.usage.prompt_tokens == sum(len(encoder.tokenizer.encode_packed([s])[0]) for s in SENTENCES)


def test_default_client_encoding_and_single_string(embedding_server, encoder):
    result = client(embedding_server).embeddings.create(model="all-MiniLM-L6-v2", input="A man is eating food.")
    assert np.abs(np.array(result.data[0].embedding) - encoder.encode("A man is eating food.")).max() <= 1e-6


def test_token_id_inputs_and_dimensions(embedding_server, encoder):
    ids = [int(i) for i in encoder.tokenizer.encode_packed(["A man is eating food."])[0]]
    body = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": [ids, ids[:4]]}, timeout=30).json()
    np.testing.assert_allclose(body["data"][0]["embedding"], encoder.encode("A man is eating food."), atol=1e-6)
    assert body["usage"]["prompt_tokens"] == len(ids) + 4
    short = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": "Short.", "dimensions": 64},
                       timeout=30).json()["data"][0]["embedding"]
    full = encoder.encode("Short.")[:64]
    np.testing.assert_allclose(short, full / np.linalg.norm(full), atol=1e-6)  # leading dims, renormalized


def test_concurrent_requests_each_get_their_own_rows(embedding_server, encoder):
    """Many single-sentence requests at once are merged into shared batches; none sees another's result."""
    sentences = [f"Sentence number {i} is {'very ' * (i % 7)}different from the others." for i in range(48)]
    expected = encoder.encode(sentences)
    batches_before = embedding_server.metric("cpuformer_batch_size_count", engine="embeddings")

    def one(i):
        r = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": sentences[i]}, timeout=60)
        return np.array(r.json()["data"][0]["embedding"], np.float32)

    with ThreadPoolExecutor(16) as pool:
        got = np.stack(list(pool.map(one, range(len(sentences)))))
    assert np.abs(got - expected).max() <= 1e-6
    batches = embedding_server.metric("cpuformer_batch_size_count", engine="embeddings") - batches_before
    assert 1 <= batches <= len(sentences)


def test_tei_embed_normalizes_unless_told_not_to(embedding_server, encoder):
    raw = encoder.encode(SENTENCES[:2], normalize_embeddings=False)
    out = httpx.post(embedding_server.url + "/embed", json={"inputs": SENTENCES[:2]}, timeout=30).json()
    np.testing.assert_allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    # all-MiniLM-L6-v2's folder has a Normalize module, which TEI's normalize=false leaves out
    plain = httpx.post(embedding_server.url + "/embed", json={"inputs": "A man is eating food.", "normalize": False},
                       timeout=30).json()
    assert len(plain) == 1
    model_output = encoder.embed_tokens(*encoder.tokenizer.encode_packed(["A man is eating food."]))
    np.testing.assert_allclose(plain[0], model_output[0], atol=1e-6)


def test_models_health_and_metrics(embedding_server):
    models = client(embedding_server).models.list()
    assert [m.id for m in models.data] == ["all-MiniLM-L6-v2"]
    assert httpx.get(embedding_server.url + "/health").json() == {"status": "ok", "model": "all-MiniLM-L6-v2",
                                                                   "task": "embeddings"}
    metrics = httpx.get(embedding_server.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in ("cpuformer_requests_total", "cpuformer_queue_depth", "cpuformer_batch_size_bucket",
                 "cpuformer_tokens_total", "cpuformer_request_latency_seconds_bucket"):
        assert name in metrics.text
    assert embedding_server.metric("cpuformer_requests_total", endpoint="/v1/models", status="200") >= 1
