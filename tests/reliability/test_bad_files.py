"""A standing "bad files" suite (issue 17): every kind of bad input people put in a folder,
generated here, ingested in one batch beside good files through the real Ingester (built from
test Settings, the real MiniLM model, a real persistent Chroma in a data folder that sits inside
the ingested tree). For each kind: what the report says of the file, and, for a good file that
turned bad, that its stored version is untouched."""

from __future__ import annotations

import codecs
import io
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from api.assembly import build_ingester, build_store
from api.settings import Settings
from index.embedding import SentenceTransformerEmbedder
from index.store import ChromaStore
from ingest.sources import DATA_MARKER
from ingest.sync import IngestReport
from tests.conftest import markdown
from tests.samples import make_docx, make_html, make_pdf

Outcome = Literal["failed", "ingested", "skipped"]
Make = Callable[[Path, Path], None]  # (the file to write, a folder outside the ingested tree)

SECTIONS = [
    ("Scope", ["The accounts-payable team matches supplier invoices to purchase orders."]),
    ("Threshold", ["Auto-approve a match when DocuSift confidence is at least 0.92."]),
]
DATA = "kbdata"  # KB_DATA_DIR, inside the ingested tree
SECRET = "Quokkasecret"  # the text of the file outside the tree: in no chunk, ever
SCRIPT = "Scriptmarmoset"  # text of a <script>: in no chunk
STYLE = "Stylepangolin"  # text of a <style>: in no chunk
LONG_LINES = 10_000


def _text(text: str) -> Make:
    def make(path: Path, outside: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return make


def _bytes(data: bytes) -> Make:
    def make(path: Path, outside: Path) -> None:
        path.write_bytes(data)

    return make


def _good_pdf(path: Path, outside: Path) -> None:
    step = "Quarterly close step {} is signed by the controller."
    make_pdf(path, [[(f"Part {n}", [step.format(n)] * 6)] for n in range(1, 5)])


def _good_docx(path: Path, outside: Path) -> None:
    make_docx(path, "Contract review", SECTIONS * 5)


def _cut_in_half(path: Path, outside: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _encrypted_pdf(path: Path, outside: Path) -> None:
    import pikepdf

    plain = outside / "plain.pdf"
    make_pdf(plain, [SECTIONS])
    with pikepdf.open(plain) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner-pw", user="user-pw"))


def _scanned_pdf(path: Path, outside: Path) -> None:
    """A page that is one picture of text, as a scanner makes it: no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    picture = Image.new("L", (800, 300), 255)
    ImageDraw.Draw(picture).text((40, 120), "Scanned invoice policy, page 1", fill=0)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(picture, x=10, y=10, w=190)
    pdf.output(str(path))


def _zip_as_docx(path: Path, outside: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "An archive of photos, not a Word document.")
    path.write_bytes(buffer.getvalue())


def _binary(path: Path, outside: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(17).randbytes(2048))


def _large_text(path: Path, outside: Path) -> None:
    lines = (f"Register line {i}: approved." for i in range(1, LONG_LINES + 1))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _deep_html(path: Path, outside: Path) -> None:
    path.write_text(
        "<html><head><title>Deep page</title></head><body><h1>Gateway FAQ</h1>"
        + "<div class='wrap'>" * 5000
        + "<p>The gateway keeps prompts for 90 days.</p>"
        + "</div>" * 5000
        + "<p>Ask the IT service desk for exceptions.</p></body></html>",
        encoding="utf-8",
    )


def _scripted_html(path: Path, outside: Path) -> None:
    path.write_text(
        "<html><head><title>Portal</title>"
        f"<style>.{STYLE} {{ color: red; }} body::after {{ content: '{STYLE}'; }}</style>"
        f"<script>var {SCRIPT} = 'tracking'; console.log('{SCRIPT} loaded');</script>"
        "</head><body><h1>Supplier portal</h1>"
        "<p>Suppliers upload invoices through the portal every Friday.</p>"
        f"<script type='module'>document.title = '{SCRIPT}';</script>"
        "</body></html>",
        encoding="utf-8",
    )


def _link_outside(path: Path, outside: Path) -> None:
    secret = outside / "secret.md"
    secret.write_text(markdown("secret", f"# Secret\n\n{SECRET} salaries are private.\n"))
    path.symlink_to(secret)


def _folder_link_outside(path: Path, outside: Path) -> None:
    folder = outside / "private"
    folder.mkdir(exist_ok=True)
    (folder / "pay.md").write_text(markdown("pay", f"# Pay\n\n{SECRET} bands for 2026.\n"))
    path.symlink_to(folder, target_is_directory=True)


def _good_md(doc_id: str, body: str = "Match invoices with DocuSift.") -> Make:
    return _text(markdown(doc_id, f"# {doc_id}\n\n{body}\n"))


def _with_bom(bom: bytes, encoding: str, doc_id: str, body: str) -> Make:
    return _bytes(bom + markdown(doc_id, f"# Leave\n\n{body}\n").encode(encoding))


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: the file, how the batch must report it, and for a document the
    text its chunks keep (`kept`) or no chunk of the store may hold (`never`)."""

    name: str
    rel: str
    make: Make
    outcome: Outcome
    reason: tuple[str, ...] = ()  # words the failure's reason must hold
    before: Make | None = None  # a good version, ingested by an earlier run
    kept: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    doc_id: str | None = None


_RESAVE = "re-save the file as UTF-8"
KINDS = [
    Kind("corrupt_pdf", "bad/random.pdf", _bytes(random.Random(1).randbytes(4096)), "failed",
         ("cannot parse as pdf",)),
    Kind("truncated_pdf", "victims/report.pdf", _cut_in_half, "failed", ("pdf",),
         before=_good_pdf),
    Kind("encrypted_pdf", "bad/locked.pdf", _encrypted_pdf, "failed", ("password",)),
    Kind("scanned_pdf", "bad/scan.pdf", _scanned_pdf, "failed", ("no text", "OCR")),
    Kind("truncated_docx", "victims/contract.docx", _cut_in_half, "failed",
         ("cannot parse as docx",), before=_good_docx),
    Kind("zip_renamed_docx", "bad/photos.docx", _zip_as_docx, "failed",
         ("cannot parse as docx",)),
    Kind("empty_md", "bad/empty.md", _bytes(b""), "failed", ("no text",)),
    Kind("empty_txt", "bad/empty.txt", _bytes(b""), "failed", ("no text",)),
    Kind("empty_pdf", "bad/empty.pdf", _bytes(b""), "failed", ("cannot parse as pdf",)),
    Kind("empty_docx", "bad/empty.docx", _bytes(b""), "failed", ("cannot parse as docx",)),
    Kind("binary_as_md", "victims/faq.md", _binary, "failed", ("not valid UTF-8", _RESAVE),
         before=_good_md("victim-faq")),
    Kind("latin1_txt", "bad/latin.txt", _bytes("Congés payés à Noël".encode("latin-1")),
         "failed", ("not valid UTF-8", "byte 4", _RESAVE)),
    Kind("utf16_bom_md", "enc/utf16.md",
         _with_bom(codecs.BOM_UTF16_LE, "utf-16-le", "utf16-doc", "Congés payés: 25 jours."),
         "ingested", kept=("Congés payés: 25 jours.",), doc_id="utf16-doc"),
    Kind("utf8_bom_md", "enc/utf8.md",
         _with_bom(codecs.BOM_UTF8, "utf-8", "utf8-doc", "Jours fériés: 11 par an."),
         "ingested", kept=("Jours fériés: 11 par an.",), doc_id="utf8-doc"),
    Kind("large_text", "big/register.txt", _large_text, "ingested",
         kept=("Register line 1:", f"Register line {LONG_LINES}:"), doc_id="register"),
    Kind("deep_html", "web/deep.html", _deep_html, "ingested",
         kept=("The gateway keeps prompts for 90 days.", "Ask the IT service desk"),
         doc_id="deep"),
    Kind("script_style_html", "web/portal.html", _scripted_html, "ingested",
         kept=("Suppliers upload invoices",), never=(SCRIPT, STYLE), doc_id="portal"),
    Kind("malformed_front_matter", "meta/yaml.md",
         _text("---\nid: broken-yaml\nowner: [unclosed\n---\n# Body\n\nText.\n"), "failed",
         ("metadata field '(yaml)'", "not valid YAML", "line")),
    Kind("wrong_type_interval", "meta/interval.md",
         _text(markdown("interval", "# I\n\nText.", review_interval_days="soon")), "failed",
         ("metadata field 'review_interval_days'", "soon")),
    Kind("wrong_type_access", "meta/access.md",
         _text(markdown("access-five", "# A\n\nText.", access=5)), "failed",
         ("metadata field 'access'",)),
    Kind("unknown_field", "meta/unknown.md",
         _text(markdown("unknown", "# U\n\nText.", revew_by="2027-01-01")), "failed",
         ("metadata field 'revew_by'", "unknown field", "did you mean 'review_by'")),
    Kind("duplicate_id_first", "dup/a.md", _good_md("shared-id", "First copy."), "ingested",
         kept=("First copy.",), doc_id="shared-id"),
    Kind("duplicate_id_second", "dup/b.md", _good_md("shared-id", "Second copy."), "failed",
         ("document id 'shared-id' is already used by dup/a.md",), never=("Second copy.",)),
    Kind("symlink_outside", "links/secret.md", _link_outside, "failed",
         ("outside the ingested folder",), never=(SECRET,)),
    Kind("folder_symlink_outside", "links/private", _folder_link_outside, "failed",
         ("outside the ingested folder",), never=(SECRET,)),
    Kind("name_spaces", "names/with  spaces.md", _good_md("with-spaces"), "ingested",
         doc_id="with-spaces"),
    Kind("name_unicode", "names/ünïcødé 資料.md", _good_md("unicode-name"), "ingested",
         doc_id="unicode-name"),
    Kind("name_quotes", "names/it's \"quoted\".md", _good_md("quoted-name"), "ingested",
         doc_id="quoted-name"),
    Kind("name_leading_dash", "names/-rf.md", _good_md("dash-name"), "ingested",
         doc_id="dash-name"),
    Kind("name_newline", "names/new\nline.md", _good_md("newline-name"), "ingested",
         doc_id="newline-name"),
    Kind("one_line_txt", "odd/one-line.txt", _text("Month-end close starts on day three.\n"),
         "ingested", kept=("Month-end close starts on day three.",), doc_id="one-line"),
    Kind("heading_only_md", "odd/heading.md", _text(markdown("heading-only", "# Heading only")),
         "ingested", kept=("Heading only",), doc_id="heading-only"),
    Kind("orphan_sidecar", "bad/ghost.pdf.meta.yaml", _text("owner: Nobody\n"), "failed",
         ("sidecar without its document ghost.pdf",)),
]  # fmt: skip
GOOD = {
    "good/playbook.md": "good-playbook",
    "good/guide.pdf": "guide",
    "good/handbook.docx": "handbook",
    "good/page.html": "page",
    "good/notes.txt": "notes",
}


@dataclass
class Batch:
    root: Path
    data: Path
    store: ChromaStore
    before: IngestReport
    report: IngestReport
    stored_before: dict[str, tuple[str, list[str]]]  # doc id -> (content hash, chunk ids)
    seconds: float

    def failed(self) -> dict[str, str]:
        return {f.path: f.reason for f in self.report.failed}

    def written(self) -> dict[str, str]:
        """path -> doc id of the documents the batch added or updated."""
        return {e["path"]: e["doc_id"] for e in self.report.added + self.report.updated}

    def every_chunk_text(self) -> list[str]:
        return list(self.store.chunks.get(include=["documents"])["documents"])


def _stored(store: ChromaStore, doc_id: str) -> tuple[str, list[str]]:
    record = store.document(doc_id)
    assert record is not None, f"{doc_id} is not stored"
    return record.content_hash, sorted(cid for cid, _, _ in store.document_chunks(doc_id))


def _write_good(root: Path) -> None:
    (root / "good").mkdir(parents=True)
    _good_md("good-playbook")(root / "good" / "playbook.md", root)
    make_pdf(root / "good" / "guide.pdf", [SECTIONS])
    make_docx(root / "good" / "handbook.docx", "Handbook", SECTIONS)
    make_html(root / "good" / "page.html", "Page", SECTIONS)
    (root / "good" / "notes.txt").write_text("Month-end close starts on day three.\n")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Batch:
    base = tmp_path_factory.mktemp("bad_files")
    root, outside = base / "kb", base / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "kb-defaults.yaml").write_text("doc_type: playbook\ndepartment: coe\nowner: QA\n")
    settings = Settings(_env_file=None, data_dir=root / DATA, corpus_dir=root)
    store = build_store(settings)
    ingester = build_ingester(settings, store, embedder)

    victims = [k for k in KINDS if k.before is not None]
    for kind in victims:
        (root / kind.rel).parent.mkdir(parents=True, exist_ok=True)
        assert kind.before is not None
        kind.before(root / kind.rel, outside)
    before = ingester.sync(root)
    ids = {e["path"]: e["doc_id"] for e in before.added}
    stored_before = {ids[k.rel]: _stored(store, ids[k.rel]) for k in victims}

    _write_good(root)
    (root / DATA / "evals").mkdir(parents=True, exist_ok=True)  # a file a run could write there
    (root / DATA / "evals" / "notes.md").write_text("# Eval notes\n\nNot a document.\n")
    for kind in KINDS:
        (root / kind.rel).parent.mkdir(parents=True, exist_ok=True)
        kind.make(root / kind.rel, outside)
    start = time.perf_counter()
    report = ingester.sync(root)
    seconds = time.perf_counter() - start
    return Batch(root, root / DATA, store, before, report, stored_before, seconds)


def test_at_least_25_kinds_are_covered() -> None:
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names)
    assert len({k.rel for k in KINDS}) == len(KINDS)
    assert len(KINDS) + 1 >= 25  # + the data folder (test_the_data_folder_is_never_a_document)


def test_the_earlier_run_stored_every_good_version(batch: Batch) -> None:
    assert batch.before.failed == []
    assert len(batch.before.added) == len(batch.stored_before) == 3


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_each_kind_is_reported(batch: Batch, kind: Kind) -> None:
    failed, written = batch.failed(), batch.written()
    if kind.outcome == "failed":
        assert kind.rel in failed, f"{kind.rel!r} not reported as failed"
        for words in kind.reason:
            assert words.lower() in failed[kind.rel].lower(), failed[kind.rel]
        assert kind.rel not in written
    elif kind.outcome == "ingested":
        assert kind.rel in written, f"{kind.rel!r} not ingested: {failed.get(kind.rel)}"
        assert written[kind.rel] == kind.doc_id
        assert kind.rel not in failed
    if kind.kept:
        assert kind.doc_id is not None
        text = "\n".join(t for _, t, _ in batch.store.document_chunks(kind.doc_id))
        for words in kind.kept:
            assert words in text
    if kind.never:
        chunks = batch.every_chunk_text()
        assert chunks  # the store holds chunks, so the next check can fail
        for words in kind.never:
            assert not [c for c in chunks if words in c]


@pytest.mark.parametrize(
    "kind", [k for k in KINDS if k.before], ids=[k.name for k in KINDS if k.before]
)
def test_a_stored_good_version_survives_its_corruption(batch: Batch, kind: Kind) -> None:
    assert kind.rel in batch.failed()
    (doc_id,) = [e["doc_id"] for e in batch.before.added if e["path"] == kind.rel]
    assert _stored(batch.store, doc_id) == batch.stored_before[doc_id]
    assert doc_id not in [e["doc_id"] for e in batch.report.removed]


def test_the_good_files_of_the_batch_are_ingested(batch: Batch) -> None:
    written = batch.written()
    assert {path: written.get(path) for path in GOOD} == GOOD
    for doc_id in GOOD.values():
        assert batch.store.document_chunks(doc_id)


def test_the_data_folder_is_never_a_document(batch: Batch) -> None:
    stored = [p for p in batch.data.rglob("*") if p.is_file() and p.name != DATA_MARKER]
    assert any(p.suffix == ".sqlite3" for p in stored)  # Chroma's files are there
    assert (batch.data / "evals" / "notes.md") in stored
    report = batch.report
    entries = report.added + report.updated + report.unchanged + report.removed
    paths = [e["path"] for e in entries] + [f.path for f in report.failed]
    assert paths
    assert [p for p in paths if p.startswith(f"{DATA}/")] == []
    assert [r.path for r in batch.store.documents() if r.path.startswith(f"{DATA}/")] == []


def test_nothing_else_failed_and_the_time_is_measured(
    batch: Batch, record_property: Callable[[str, object], None]
) -> None:
    expected = {k.rel for k in KINDS if k.outcome == "failed"}
    assert set(batch.failed()) == expected
    record_property("batch_ingest_seconds", round(batch.seconds, 1))
    print(f"batch of {len(KINDS)} bad kinds + {len(GOOD)} good files: {batch.seconds:.1f} s")
