"""Every limit and error path of the server, each checking status and message: 413 before parsing, too-long
inputs (400/413, or truncated on request), 422 naming the field, 429 with Retry-After, 401, 404, unsupported
options, and a graceful SIGTERM."""
from __future__ import annotations

import json
import signal
import threading

import httpx
import numpy as np
import pytest

from server_process import ServerProcess

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG_TEXT = "word " * 400  # 402 tokens with [CLS] and [SEP]; all-MiniLM-L6-v2 takes 256


@pytest.fixture(scope="module")
def guarded_server(default_model_folder):
    """An API key, a 4 KB body limit, a queue of one request, and batches that wait up to 5 s to fill (64
    tokens): a short request stays queued long enough for the next one to find the queue full."""
    with ServerProcess(["--api-key", KEY, "--max-request-bytes", "4096", "--max-queue", "1",
                        "--max-wait-ms", "5000", "--max-batch-tokens", "64"]) as server:
        yield server


def error_of(response: httpx.Response) -> str:
    body = response.json()
    return body["error"]["message"] if isinstance(body["error"], dict) else body["error"]


# --- 413: the body is refused before it is parsed -------------------------------------------------------------
def test_a_body_over_the_limit_gets_413_unread(guarded_server):
    big = json.dumps({"input": "x" * 10_000})
    r = httpx.post(guarded_server.url + "/v1/embeddings", content=big, headers=AUTH, timeout=30)
    assert r.status_code == 413
    assert error_of(r) == f"request body is {len(big)} bytes; the limit is 4096 bytes (--max-request-bytes)"


def test_a_streamed_body_without_length_is_cut_at_the_limit(guarded_server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(guarded_server.url + "/embed", content=chunks(), headers=AUTH, timeout=30)
    assert r.status_code == 413
    assert r.json() == {"error": "request body is more than 4096 bytes; the limit is 4096 bytes "
                                 "(--max-request-bytes)", "error_type": "Validation"}


# --- inputs past the model's max length ------------------------------------------------------------------------
def test_too_long_input_is_400_on_openai_and_413_on_tei(embedding_server):
    r = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": ["ok", LONG_TEXT]}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert error_of(r).startswith("input 1 has 402 tokens; this model takes at most 256 tokens")
    r = httpx.post(embedding_server.url + "/embed", json={"inputs": LONG_TEXT}, timeout=30)
    assert r.status_code == 413 and "input 0 has 402 tokens; this model takes at most 256 tokens" in error_of(r)
    ids = list(range(1000, 1300))
    r = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": ids}, timeout=30)
    assert r.status_code == 400 and error_of(r).startswith("input 0 has 300 tokens")


def test_truncate_cuts_at_the_limit_as_encode_does(embedding_server, encoder):
    for path, body in (("/v1/embeddings", {"input": LONG_TEXT, "truncate": True}),
                       ("/embed", {"inputs": LONG_TEXT, "truncate": True})):
        r = httpx.post(embedding_server.url + path, json=body, timeout=30)
        assert r.status_code == 200, r.text
        got = r.json()["data"][0]["embedding"] if path.startswith("/v1") else r.json()[0]
        assert np.abs(np.array(got) - encoder.encode(LONG_TEXT)).max() <= 1e-6  # encode truncates at 256


def test_prompt_past_the_context_is_400(gpt2_server):
    r = httpx.post(gpt2_server.url + "/v1/completions", json={"prompt": "x", "max_tokens": 5000}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert error_of(r).startswith("this model's maximum context length is 2048 tokens; prompt 0 has 1 tokens "
                                  "and max_tokens is 5000 (5001 in all)")


# --- 422: malformed JSON or wrong types, naming the field -----------------------------------------------------
@pytest.mark.parametrize("path, body, message", [
    ("/v1/embeddings", b'{"input": ', "the request body is not valid JSON: EOF while parsing a value at line 1 "
                                      "column 10"),
    ("/v1/embeddings", b'{"input": 5}', "invalid request: input: expected a string, a list of strings, a list of "
                                        "token ids or a list of lists of token ids"),
    ("/v1/embeddings", b'{"input": "a", "encoding_format": "hex"}',
     "invalid request: encoding_format: Input should be 'float' or 'base64'"),
    ("/v1/embeddings", b'{"model": "all-MiniLM-L6-v2"}', "invalid request: input: Field required"),
    ("/v1/completions", b'{"prompt": "a", "max_tokens": "5"}', "invalid request: max_tokens: Input should be a "
                                                               "valid integer"),
    ("/v1/completions", b'{"prompt": "a", "temperature": 3}', "invalid request: temperature: Input should be less "
                                                              "than or equal to 2"),
    ("/embed", b'{"inputs": "a", "normalize": "yes"}', "invalid request: normalize: Input should be a valid "
                                                       "boolean"),
    ("/embed", b'[1, 2]', "invalid request: body: Input should be an object"),
])
def test_malformed_json_and_wrong_types_are_422_naming_the_field(embedding_server, path, body, message):
    r = httpx.post(embedding_server.url + path, content=body, timeout=30)
    assert r.status_code == 422 and error_of(r) == message
    if path.startswith("/v1/") and "JSON" not in message:
        assert r.json()["error"]["param"] == message.split(": ")[1]


# --- 429: a full queue -----------------------------------------------------------------------------------------
def test_a_full_queue_gets_429_with_retry_after(guarded_server):
    first = {}

    def queued():  # 3 tokens: its batch waits up to 5 s for more
        first["r"] = httpx.post(guarded_server.url + "/v1/embeddings", json={"input": "hi"}, headers=AUTH, timeout=30)

    thread = threading.Thread(target=queued)
    thread.start()
    try:
        deadline_polls = 0
        while guarded_server.metric("cpuformer_queue_depth", engine="embeddings") < 1:
            deadline_polls += 1
            assert deadline_polls < 200, "the first request never reached the queue"
            threading.Event().wait(0.02)
        r = httpx.post(guarded_server.url + "/v1/embeddings", json={"input": "again"}, headers=AUTH, timeout=30)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert error_of(r) == "the embedding queue is full (1 requests waiting); retry later"
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
    finally:
        thread.join(timeout=30)
    assert first["r"].status_code == 200  # the queued request is still answered


# --- 401 / 404 / unsupported options ---------------------------------------------------------------------------
def test_api_key_is_required_except_for_health_and_metrics(guarded_server):
    r = httpx.post(guarded_server.url + "/v1/embeddings", json={"input": "hi"}, timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert error_of(r) == "missing API key: send the header 'Authorization: Bearer <key>'"
    r = httpx.get(guarded_server.url + "/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert r.status_code == 401 and error_of(r) == "incorrect API key provided"
    r = httpx.post(guarded_server.url + "/embed", json={"inputs": "hi"}, timeout=30)
    assert r.status_code == 401 and r.json()["error_type"] == "Unauthorized"
    assert httpx.get(guarded_server.url + "/v1/models", headers=AUTH, timeout=30).status_code == 200
    assert httpx.get(guarded_server.url + "/health", timeout=30).status_code == 200
    assert httpx.get(guarded_server.url + "/metrics", timeout=30).status_code == 200


def test_wrong_model_and_wrong_endpoint_are_404(embedding_server):
    r = httpx.post(embedding_server.url + "/v1/embeddings", json={"input": "a", "model": "gpt-4"}, timeout=30)
    assert r.status_code == 404
    assert error_of(r) == "the model 'gpt-4' does not exist; this server serves 'all-MiniLM-L6-v2'"
    r = httpx.post(embedding_server.url + "/v1/completions", json={"prompt": "a"}, timeout=30)
    assert r.status_code == 404 and error_of(r).startswith("this server serves embeddings with 'all-MiniLM-L6-v2'")


@pytest.mark.parametrize("body, param, message", [
    ({"prompt": "a", "n": 2}, "n", "only n=1 is supported"),
    ({"prompt": "a", "logprobs": 2}, "logprobs", "logprobs is not supported"),
    ({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, "stop", "stop takes at most 4 sequences, got 5"),
    ({"prompt": ""}, "prompt", "prompt 0 has no tokens; give at least one token of text"),
    ({"prompt": [5, 100000]}, "prompt", "token id 100000 is outside the vocabulary [0, 320)"),
    ({"prompt": [5, 2**70]}, "prompt", f"token id {2**70} is outside the vocabulary [0, 320)"),
])
def test_bad_completion_options_are_400(gpt2_server, body, param, message):
    r = httpx.post(gpt2_server.url + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 400 and error_of(r).startswith(message)
    assert r.json()["error"]["param"] == param


def test_bad_embedding_inputs_are_400(embedding_server):
    for body, message in (({"input": []}, "input must not be empty"),
                          ({"input": [[1, 2], [5, 999999]]}, "input 1 has token id 999999 outside the vocabulary"),
                          ({"input": [2**64]}, f"input 0 has token id {2**64} outside the vocabulary"),
                          ({"input": "a", "dimensions": 1000}, "dimensions must be at most this model's 384")):
        r = httpx.post(embedding_server.url + "/v1/embeddings", json=body, timeout=30)
        assert r.status_code == 400 and error_of(r).startswith(message)


# --- SIGTERM -------------------------------------------------------------------------------------------------
def test_sigterm_finishes_the_stream_in_flight_and_refuses_new_requests(gpt2_folder):
    with ServerProcess(["--model", str(gpt2_folder)]) as server:
        body = {"prompt": "The quick", "max_tokens": 1200, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}
        lines = []
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    if not lines:
                        server.terminate()  # the first token arrived: shut down now
                        try:
                            refused = httpx.post(server.url + "/v1/completions", json={"prompt": "x"}, timeout=10)
                            assert refused.status_code == 503 and error_of(refused) == "the server is shutting down"
                        except httpx.TransportError:
                            pass  # or the listening socket is already closed: refused either way
                    lines.append(line)
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["usage"]["completion_tokens"] == 1200
        # uvicorn re-raises the SIGTERM it handled once it has shut down, so the exit status says SIGTERM
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "cpuformer serve: every request answered; stopped" in server.log()
