"""/v1/chat/completions on the real server with a small random Llama folder (GQA, ChatML template): the greedy
reply equals offline `model.chat` (whose template rendering and stopping are checked against transformers in
tests/test_chat.py), streaming yields the same text in chat.completion.chunk deltas, usage counts, and errors."""
from __future__ import annotations

import httpx
import openai
import pytest

from server_process import ServerProcess

MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is a CPU?"}]


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    from llama_folder import write_llama_folder

    return write_llama_folder(tmp_path_factory.mktemp("llama") / "serve_llama")


@pytest.fixture(scope="module")
def llama_server(llama_folder):
    with ServerProcess(["--model", str(llama_folder), "--max-sequences", "2"]) as server:
        yield server


@pytest.fixture(scope="module")
def llama(llama_folder):
    from cpuformer.models import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(llama_folder)


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_greedy_reply_equals_offline_chat(llama_server, llama):
    result = client(llama_server).chat.completions.create(model="serve_llama", messages=MESSAGES, max_tokens=30,
                                                          temperature=0)
    choice = result.choices[0]
    expected = llama.chat(MESSAGES, 30)
    assert choice.message.role == "assistant" and choice.message.content == expected
    prompt = llama.tokenizer.encode_text(llama.apply_chat_template(MESSAGES), add_special_tokens=False)
    assert result.usage.prompt_tokens == len(prompt)
    assert choice.finish_reason in ("stop", "length") and result.object == "chat.completion"


def test_streaming_yields_the_same_text(llama_server, llama):
    options = dict(model="serve_llama", messages=MESSAGES, max_tokens=25, temperature=0)
    whole = client(llama_server).chat.completions.create(**options).choices[0].message.content
    chunks = list(client(llama_server).chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                               **options))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole == llama.chat(MESSAGES, 25)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens <= 25


def test_seeded_sampling_is_repeatable(llama_server):
    options = dict(model="serve_llama", messages=MESSAGES, max_tokens=20, temperature=0.9, top_p=0.9, seed=7)
    first = client(llama_server).chat.completions.create(**options).choices[0].message.content
    assert client(llama_server).chat.completions.create(**options).choices[0].message.content == first


@pytest.mark.parametrize("body, status, message", [
    ({"messages": []}, 422, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "only n=1 is supported"),
    ({"messages": [{"role": "user", "content": 5}]}, 422, "content"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 600}, 400, "maximum context length is 512"),
])
def test_bad_requests_name_the_problem(llama_server, body, status, message):
    response = httpx.post(llama_server.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status
    assert message in response.text


def test_model_without_template_is_a_400(gpt2_server):
    response = httpx.post(gpt2_server.url + "/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert response.status_code == 400 and "has no chat template" in response.text
