"""/v1/completions on the real server with a small random GPT-2 folder: greedy and seeded sampling equal offline
`generate`, streaming yields what the non-streamed answer holds, stop strings, several prompts, continuous
batching (a short request finishes while a long one runs), and a disconnect cancels the generation."""
from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import openai
import pytest

PROMPT = "The quick brown fox"
DEADLINE_S = 30.0


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def offline_text(model, prompt: str, n: int, **options) -> str:
    return model.generate_text(prompt, max_new_tokens=n, **options)


def test_greedy_completion_equals_offline_generate(gpt2_server, gpt2):
    result = client(gpt2_server).completions.create(model="serve_gpt2", prompt=PROMPT, max_tokens=40,
                                                    temperature=0)
    assert result.choices[0].text == offline_text(gpt2, PROMPT, 40)
    assert result.choices[0].finish_reason == "length"
    prompt_tokens = len(gpt2.tokenizer.encode_packed([PROMPT], max_length=2048)[0])
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (prompt_tokens, 40)


def test_streaming_yields_the_same_text_as_non_streaming(gpt2_server):
    options = dict(model="serve_gpt2", prompt=PROMPT, max_tokens=30, temperature=0)
    whole = client(gpt2_server).completions.create(**options).choices[0].text
    chunks = list(client(gpt2_server).completions.create(stream=True, stream_options={"include_usage": True},
                                                         **options))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(pieces) == whole and len(pieces) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 30


def test_seeded_sampling_is_reproducible_and_equals_offline(gpt2_server, gpt2):
    options = dict(model="serve_gpt2", prompt=PROMPT, max_tokens=25, temperature=0.8, top_p=0.9, seed=7)
    first = client(gpt2_server).completions.create(**options).choices[0].text
    assert client(gpt2_server).completions.create(**options).choices[0].text == first
    assert first == offline_text(gpt2, PROMPT, 25, do_sample=True, temperature=0.8, top_p=0.9, seed=7)


def test_stop_string_ends_the_text_before_it(gpt2_server, gpt2):
    full = offline_text(gpt2, PROMPT, 40)
    stop = full[12:14]  # two characters from the middle of the greedy continuation
    result = client(gpt2_server).completions.create(model="serve_gpt2", prompt=PROMPT, max_tokens=40, temperature=0,
                                                    stop=[stop, "never appears"])
    assert result.choices[0].text == full[:full.index(stop)]
    assert result.choices[0].finish_reason == "stop"
    streamed = client(gpt2_server).completions.create(model="serve_gpt2", prompt=PROMPT, max_tokens=40,
                                                      temperature=0, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == full[:full.index(stop)]


def test_several_prompts_and_token_id_prompts(gpt2_server, gpt2):
    prompts = ["Caf\u00e9 cr\u00e8me", "The lazy dog"]
    result = client(gpt2_server).completions.create(model="serve_gpt2", prompt=prompts, max_tokens=12, temperature=0)
    assert [c.index for c in result.choices] == [0, 1]
    assert [c.text for c in result.choices] == [offline_text(gpt2, p, 12) for p in prompts]
    ids = [int(i) for i in gpt2.tokenizer.encode_packed(["The lazy dog"], max_length=2048)[0]]
    by_ids = client(gpt2_server).completions.create(model="serve_gpt2", prompt=ids, max_tokens=12, temperature=0)
    assert by_ids.choices[0].text == result.choices[1].text


def _metric_until(server, name: str, predicate, **labels) -> float:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = server.metric(name, **labels)
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_short_request_finishes_while_a_long_one_runs(gpt2_server, gpt2):
    """Continuous batching: the short request joins the running batch instead of waiting for the long one."""
    finished = {}
    long_text = []

    def long_stream():
        body = {"prompt": PROMPT, "max_tokens": 1500, "temperature": 0, "stream": True}
        with httpx.stream("POST", gpt2_server.url + "/v1/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    long_text.append(json.loads(line[6:])["choices"][0]["text"])
        finished["long"] = time.monotonic()

    thread = threading.Thread(target=long_stream)
    thread.start()
    try:
        _metric_until(gpt2_server, "cpuformer_running_sequences", lambda v: v >= 1)
        short = client(gpt2_server).completions.create(model="serve_gpt2", prompt="The lazy dog", max_tokens=8,
                                                       temperature=0)
        finished["short"] = time.monotonic()
    finally:
        thread.join(timeout=120)
    assert short.choices[0].text == offline_text(gpt2, "The lazy dog", 8)
    assert finished["short"] < finished["long"]
    assert "".join(long_text) == offline_text(gpt2, PROMPT, 1500)


def test_client_disconnect_cancels_the_generation_and_frees_its_row(gpt2_server):
    cancelled = gpt2_server.metric("cpuformer_generations_cancelled_total")
    body = {"prompt": PROMPT, "max_tokens": 2000, "temperature": 0, "stream": True}
    with httpx.stream("POST", gpt2_server.url + "/v1/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # the first token arrived: hang up
    assert _metric_until(gpt2_server, "cpuformer_generations_cancelled_total", lambda v: v > cancelled) == \
        cancelled + 1
    assert _metric_until(gpt2_server, "cpuformer_running_sequences", lambda v: v == 0) == 0
    # every row is free again: four requests (--max-sequences 4) run at once
    with httpx.Client(timeout=60) as http:
        for _ in range(4):
            assert http.post(gpt2_server.url + "/v1/completions",
                             json={"prompt": "x", "max_tokens": 2, "temperature": 0}).status_code == 200
