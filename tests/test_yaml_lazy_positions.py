"""Positions found from the text when first read (:class:`controller.load.yamlsrc.LazyPositions`).

A policy's positions are only read for a diagnostic, so the fast path leaves them out and each
document finds them again from its file's text. They must be exactly what the careful path records,
also after the document crossed processes (pickled: the parse workers send documents back), and for a
file only the careful path reads (the parse cache makes lazy positions for those too).
"""

from __future__ import annotations

import pickle
from pathlib import Path

from controller.load import fastyaml
from controller.load.yamlsrc import MAX_DEPTH, LazyPositions, _load_documents, _PolicyLoader, load_documents

ROOT = Path(__file__).resolve().parent.parent


def _careful(text: str) -> list[dict[tuple[str | int, ...], tuple[int, int]]]:
    docs, problems = _load_documents(text, "p.yaml", _PolicyLoader)
    assert problems == []
    return [dict(d.positions) for d in docs]


def test_positions_of_the_bundled_policies_are_the_careful_paths_after_pickling() -> None:
    files = sorted((ROOT / "policies").rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        docs, problems = load_documents(text, str(path))
        assert problems == []
        sent = pickle.loads(pickle.dumps(docs))  # as a parse worker's result arrives
        for doc, expected in zip(sent, _careful(text), strict=True):
            assert dict(doc.positions) == expected
            assert doc.locate(("metadata", "name")) == _load_documents(text, str(path), _PolicyLoader)[0][
                doc.index
            ].locate(("metadata", "name"))


def test_the_fast_path_without_positions_gives_the_same_values_and_no_positions() -> None:
    text = "a: 1\nb:\n  - x: [1, 2]\n    y: 'z'\n---\nc: {d: e}\n"
    with_positions = fastyaml.plain_documents(text, MAX_DEPTH)
    without = fastyaml.plain_documents(text, MAX_DEPTH, positions=False)
    assert with_positions is not None and without is not None
    assert [(i, d) for i, d, _ in without] == [(i, d) for i, d, _ in with_positions]
    assert all(p == {} for _, _, p in without)
    assert [p for _, _, p in with_positions] == _careful(text)


def test_a_file_only_the_careful_path_reads_gets_its_positions() -> None:
    text = "a: what?\nb: [x, y]\n---\nc: 2\n"  # a "?": the fast path declines
    assert fastyaml.plain_documents(text, MAX_DEPTH) is None
    expected = _careful(text)
    for index in range(2):
        lazy = LazyPositions(text, index)
        assert pickle.loads(pickle.dumps(lazy)) == expected[index]
        assert lazy == expected[index] and len(lazy) == len(expected[index])


def test_two_lazy_documents_compare_by_their_positions() -> None:
    text = "a: 1\n---\nb: 2\n"
    assert LazyPositions(text, 0) == LazyPositions(text, 0)
    assert LazyPositions(text, 0) != LazyPositions(text, 1)
    assert (LazyPositions(text, 0) != LazyPositions(text, 0)) is False
