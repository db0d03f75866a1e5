"""The nearest-recording index and the miss diff."""

from __future__ import annotations

import numpy as np

from llm_gateway.recordings.diff import differences
from llm_gateway.recordings.nearest import NearestIndex, vectorize


def test_vectors_are_deterministic_and_normalized() -> None:
    a = vectorize(b'{"body": {"messages": "hello"}}')
    assert np.array_equal(a, vectorize(b'{"body": {"messages": "hello"}}'))
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5 and abs(float(np.linalg.norm(vectorize(b""))) - 1.0) < 1e-5


def test_query_ranks_the_most_similar_first_and_grows_past_capacity() -> None:
    index = NearestIndex()
    for i in range(300):
        index.add(f"k{i}", f"unrelated request number {i} about topic {i * 7919 % 1000}".encode())
    index.add("capital", b"What is the capital of France? Answer in one word.")
    index.add("capital", b"What is the capital of France? Answer in one word.")  # same key: no duplicate
    assert len(index) == 301
    (best, score), *_ = index.query(b"What is the capital of Spain? Answer in one word.", k=3)
    assert best == "capital" and 0.7 < score < 1.0
    ((same, exact),) = index.query(b"What is the capital of France? Answer in one word.", k=1)
    assert same == "capital" and exact > 0.999


def test_differences_point_at_the_changed_fields() -> None:
    recorded = {
        "alias": "m",
        "body": {"messages": [{"role": "user", "content": "x" * 100 + " France"}], "temperature": 0},
    }
    asked = {"alias": "m", "body": {"messages": [{"role": "user", "content": "x" * 100 + " Spain"}], "top_p": 1}}
    diff = differences(recorded, asked)
    assert diff[0].startswith("body.messages[0].content: '…") and "France" in diff[0] and "Spain" in diff[0]
    assert "body.temperature: 0 -> (absent)" in diff and "body.top_p: (absent) -> 1" in diff
    assert differences(recorded, recorded) == []
    many = differences({"a": list(range(20))}, {"a": list(range(100, 120))})
    assert len(many) == 5
