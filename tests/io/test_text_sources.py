"""io/text_sources.py, jsonl_texts.py, parquet_texts.py: the embed job's input readers, their counts and errors."""
from __future__ import annotations

import io

import pytest

from cpuformer.io.jsonl_texts import read_jsonl_texts
from cpuformer.io.text_sources import file_format, open_text_source


def test_txt_count_and_texts_follow_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\r\n\ntwo\nthree")  # no final newline: still a line; an empty line is a text
    source = open_text_source(str(path))
    assert list(source.texts()) == ["one", "", "two", "three"] and source.count() == 4
    path.write_bytes(b"")
    assert list(source.texts()) == [] and source.count() == 0


def test_jsonl_reads_the_column_and_skips_blank_lines():
    data = b'{"text": "a", "id": 1}\n\n  \n{"text": "b\\u00e9"}\n'
    assert list(read_jsonl_texts(io.BytesIO(data), "text", source="x.jsonl")) == ["a", "b\u00e9"]


@pytest.mark.parametrize("data, message", [
    (b'{"text": "a"}\n[1]\n', "x.jsonl: line 2 is not a JSON object"),
    (b'{"text": "a"}\n{"text": \n', "x.jsonl: line 2 is not valid JSON"),
    (b'{"body": "a"}\n', "x.jsonl: line 1 has no field 'text' (fields: 'body'); name the text field with --column"),
    (b'{"text": null}\n', "x.jsonl: line 1: field 'text' is NoneType, not a string"),
])
def test_jsonl_errors_name_the_line(data, message):
    with pytest.raises(ValueError) as info:
        list(read_jsonl_texts(io.BytesIO(data), "text", source="x.jsonl"))
    assert message in str(info.value)


def test_a_jsonl_line_past_the_bound_is_an_error():
    with pytest.raises(ValueError, match="x.jsonl: line 1 is longer than 64 bytes"):
        list(read_jsonl_texts(io.BytesIO(b'{"text": "' + b"a" * 100 + b'"}\n'), "text", source="x.jsonl",
                              max_line_bytes=64))


def test_extensions_are_checked():
    assert file_format("A.PARQUET", (".parquet",), "--input") == ".parquet"
    with pytest.raises(ValueError, match=r"--input 'a': unknown extension '\(none\)'; use one of .txt"):
        file_format("a", (".txt",), "--input")


def test_a_folder_is_not_an_input(tmp_path):
    (tmp_path / "d.txt").mkdir()
    with pytest.raises(ValueError, match="--input file .* is a folder"):
        open_text_source(str(tmp_path / "d.txt"))


def test_parquet_count_comes_from_the_footer(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["a", "b", "c"]}), tmp_path / "t.parquet", row_group_size=2)
    source = open_text_source(str(tmp_path / "t.parquet"))
    assert source.column == "text" and source.count() == 3 and list(source.texts()) == ["a", "b", "c"]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="bad.parquet: not a readable Parquet file"):
        open_text_source(str(tmp_path / "bad.parquet"))
