"""Find the recording nearest to a request: an hnswlib index over hashed character trigrams.

No model is needed and the vectors are deterministic: each trigram of the canonical request bytes is hashed into one
of DIM buckets, the counts are L2-normalized, and similarity is cosine.
"""

from __future__ import annotations

import hnswlib
import numpy as np

DIM = 1024
MAX_BYTES = 65536  # a longer request is compared on its first 64 KiB; the diff itself stays exact
_INITIAL_CAPACITY = 256


def vectorize(text: bytes) -> np.ndarray:
    data = np.frombuffer(text[:MAX_BYTES], dtype=np.uint8).astype(np.uint32)
    vector = np.zeros(DIM, dtype=np.float32)
    vector[0] = 1.0  # never a zero vector, so cosine is defined for an empty request
    if len(data) >= 3:
        grams = (data[:-2] * 65599 + data[1:-1] * 257 + data[2:]) * 2654435761 % DIM
        vector += np.bincount(grams.astype(np.int64), minlength=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


class NearestIndex:
    """Keys with their canonical request bytes; `query` gives the most similar keys, best first."""

    def __init__(self) -> None:
        self._index = hnswlib.Index(space="cosine", dim=DIM)
        self._index.init_index(max_elements=_INITIAL_CAPACITY, ef_construction=100, M=16)
        self._keys: list[str] = []
        self._labels: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._labels

    def add(self, key: str, canonical: bytes) -> None:
        if key in self._labels:
            return  # the key is a hash of these very bytes: nothing changed
        label = len(self._keys)
        if label >= self._index.get_max_elements():
            self._index.resize_index(2 * self._index.get_max_elements())
        self._index.add_items(vectorize(canonical)[None, :], np.array([label]))
        self._keys.append(key)
        self._labels[key] = label

    def query(self, canonical: bytes, k: int = 10) -> list[tuple[str, float]]:
        if not self._keys:
            return []
        k = min(k, len(self._keys))
        self._index.set_ef(max(50, k))
        labels, distances = self._index.knn_query(vectorize(canonical)[None, :], k=k)
        return [(self._keys[int(label)], max(0.0, 1.0 - float(d))) for label, d in zip(labels[0], distances[0])]
