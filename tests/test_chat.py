"""Chat templates and model.chat / stream_chat against transformers (reference made in a subprocess by
tests/models/make_llama_reference.py, case "chat"): the rendered prompt equals apply_chat_template's for a
Llama-3-style template (tokenizer_config.json) and a ChatML one (chat_template.jinja), the prompt ids equal
transformers' tokenization, and a greedy reply stops at the first of several eos ids where transformers' generate
stops."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "models"))
from make_llama_reference import CHAT_MESSAGES, make_reference  # noqa: E402

from cpuformer.chat import ChatTemplate  # noqa: E402
from cpuformer.models import AutoModel, LlamaForCausalLM  # noqa: E402
from cpuformer.tokenizer import Tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("chat_reference"), "chat") / "chat"


@pytest.fixture(scope="module")
def model(ref) -> LlamaForCausalLM:
    return LlamaForCausalLM.from_pretrained(ref)


@pytest.mark.parametrize("name", ["llama3", "chatml"])
def test_rendered_prompt_equals_apply_chat_template(ref, name):
    folder = ref if name == "llama3" else ref / "chatml"
    template = ChatTemplate.from_folder(folder)
    assert template.render(CHAT_MESSAGES) == (ref / f"{name}_prompt.txt").read_text(encoding="utf-8")
    without = np.load(ref / f"{name}_no_generation_prompt.npy").tobytes().decode()
    assert template.render(CHAT_MESSAGES, add_generation_prompt=False) == without


@pytest.mark.parametrize("name", ["llama3", "chatml"])
def test_prompt_ids_equal_transformers_tokenization(ref, name):
    folder = ref if name == "llama3" else ref / "chatml"  # chatml holds only the tokenizer and its template
    tokenizer = Tokenizer.from_pretrained(folder)
    prompt = ChatTemplate.from_folder(folder).render(CHAT_MESSAGES)
    ids = tokenizer.encode_text(prompt, add_special_tokens=False)
    np.testing.assert_array_equal(ids, np.load(ref / f"{name}_ids.npy")[0])


def test_auto_model_and_the_model_template(ref, model):
    assert isinstance(AutoModel.from_pretrained(ref), LlamaForCausalLM)
    assert model.apply_chat_template(CHAT_MESSAGES) == (ref / "llama3_prompt.txt").read_text(encoding="utf-8")


def test_reply_stops_at_the_first_of_several_eos_ids_like_transformers(ref, model):
    stops = [int(i) for i in np.load(ref / "stops.npy")]
    stopped = np.load(ref / "stopped.npy")  # transformers' new tokens, ending with the eos it stopped at
    assert stopped[-1] in stops and len(stopped) < len(np.load(ref / "free.npy"))
    expected = model.tokenizer.decode(stopped[:-1], skip_special_tokens=True)
    assert model.chat(CHAT_MESSAGES, 24, stop_token_ids=stops) == expected
    pieces = list(model.stream_chat(CHAT_MESSAGES, 24, stop_token_ids=stops))
    assert "".join(pieces) == expected and all(pieces)


def test_default_stops_are_the_models_eos_ids_and_the_templates_eos_token(ref, model, tmp_path):
    assert model.stop_token_ids == (2,)  # config.json / generation_config.json eos
    eot = model.tokenizer.token_to_id("<|eot_id|>")
    assert model._chat_stops(None) == {2, eot}
    free = np.load(ref / "free.npy")  # without eos: the whole 24-token reply
    assert model.chat(CHAT_MESSAGES, 24, stop_token_ids=[]) == model.tokenizer.decode(free, skip_special_tokens=True)


def test_chat_errors_name_the_problem(ref, model, tmp_path):
    with pytest.raises(ValueError, match="stop_token_ids must be in"):
        model.chat(CHAT_MESSAGES, 4, stop_token_ids=[500])
    with pytest.raises(TypeError, match="messages must be a list"):
        model.chat("hello", 4)
    with pytest.raises(ValueError, match=r"messages\[0\] must be a dict with a str 'role'"):
        model.chat([{"content": "hi"}], 4)
    import jinja2

    with pytest.raises(jinja2.exceptions.TemplateError, match="roles must be user or assistant"):
        model.chat([{"role": "tool", "content": "x"}], 4)  # the template's raise_exception
    with pytest.raises(ValueError, match="not valid jinja2"):
        ChatTemplate("{% for %}")


def test_folder_without_template(ref, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_bytes((ref / name).read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|eot_id|>"}))
    model = LlamaForCausalLM.from_pretrained(folder)
    assert ChatTemplate.from_folder(folder) is None
    with pytest.raises(ValueError, match="has no chat template"):
        model.chat(CHAT_MESSAGES, 4)


# --- command line ------------------------------------------------------------------------------------------
def test_cli_generate_streams_what_generate_text_returns(ref, model, capsys):
    from cpuformer.cli import main

    assert main(["generate", "--model", str(ref), "--max-new-tokens", "12", "What is a CPU?"]) == 0
    out = capsys.readouterr().out
    assert out == model.generate_text("What is a CPU?", 12) + "\n"


def test_cli_chat_replies_to_each_line_with_the_history(ref, model, capsys, monkeypatch):
    import io

    from cpuformer.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("What is a CPU?\nAnd a café?\n"))
    assert main(["chat", "--model", str(ref), "--max-new-tokens", "10", "--system", "Answer briefly."]) == 0
    lines = capsys.readouterr().out.split("\n")
    history = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is a CPU?"}]
    first = model.chat(history, 10)
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "And a café?"}]
    second = model.chat(history, 10)
    assert "\n".join(lines[:-1]) == f"{first}\n{second}"


def test_cli_chat_without_template_is_an_error(ref, tmp_path, capsys):
    from cpuformer.cli import main

    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_bytes((ref / name).read_bytes())
    assert main(["chat", "--model", str(folder)]) == 1
    assert "has no chat template" in capsys.readouterr().err
