"""The checked codebase as a set of importable modules, for cross-module analysis.

Real projects keep the loop in one file and the step, the helper or the optimizer
factory in another (`from .engine import train_one_epoch`). A `Project` finds the
file an import names — through the package layout (folders with `__init__.py`),
relative and absolute — and hands out that module's `ModuleFacts`, built once per
process and reused by every file that calls into it. Each use is recorded as a
dependency, so a cached result is dropped as soon as a module it read changes.

Imports are looked up on disk from the importing file's location, not on
`sys.path`: only the codebase being checked is followed, never installed packages.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.linking import ClassLineage, Target
from looplint.analysis.program import compile_module
from looplint.errors import SourceError
from looplint.files.cst_parse import parse_module
from looplint.files.parse_guard import refusal
from looplint.files.source import FileStamp, content_digest, read_bytes, source_from_bytes

_CACHED_MODULES = 256
_CACHED_SOURCE = 4_000_000
"""Characters of source whose facts a process keeps (a parsed module takes ~35x its size)."""

# A definition none of whose text mentions these cannot step, clear, build or
# evaluate anything a rule tracks, so calls into it are left as they are (unseen
# code) and its module is not even parsed. The first five are the prefilter's words;
# the activations are what a model class's `forward` can end in (LL012).
_BUILDS = r"optim|GradScaler|scaler|AdamW|Adafactor|_schedule|lion_pytorch"
_RELEVANT_TEXT = re.compile(
    _BUILDS
    + r"|zero_grad|\.step\(|backward|\.grad\b|\.eval\(|\.train\(|softmax|sigmoid|Softmax|Sigmoid"
)
_FACTORY_TEXT = re.compile(rf"\breturn\b[^\n]*(?:{_BUILDS})|(?:{_BUILDS})[\s\S]*\breturn\b")
_MODULE_HEADER = re.compile(r"\(\s*(?:torch\.)?(?:nn\.)?Module\s*[,)]")
_BASES = re.compile(r"^class[ \t]+\w+[ \t]*\(([^)]*)\)")
_FROM_IMPORT = re.compile(
    r"^from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n(]*))", re.M
)
_NETWORK_BASE_HOPS = 3
"""How many classes up a chain of bases (`X(LayerBase)`, `LayerBase(nn.Module)`) is followed."""
_LAYER_TEXT = re.compile(
    r"\b(?:torch\.)?nn\.(?!ReLU|GELU|SiLU|Tanh|Sigmoid|Dropout|Identity|Softmax|Module\b)"
    r"[A-Z]\w*\(|\bParameter\("
)
_NOT_CODE = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|#[^\n]*')
_TORCH_LOADER_BASE = re.compile(r"\(\s*torch\.utils\.data\.(?:dataloader\.)?DataLoader\s*[,)]")
_LOADER_BASE = re.compile(r"\(\s*DataLoader\s*[,)]")
_TORCH_LOADER_IMPORT = re.compile(
    r"^from[ \t]+torch\.utils\.data(?:\.dataloader)?[ \t]+import[^\n]*\bDataLoader\b", re.MULTILINE
)
_OWN_SPLITTING = re.compile(r"DistributedSampler|rank|world_size|num_replicas|shard", re.I)


def definition_text(text: str, name: str) -> str | None:
    """The source of the top-level `def name` or `class name` in `text`, by indentation
    (cheap: no parse); None when there is none."""
    found = re.search(
        rf"^(?:async[ \t]+def|def|class)[ \t]+{re.escape(name)}\b.*$", text, re.MULTILINE
    )
    if found is None:
        return None
    end = found.end()
    for line in re.finditer(r"^[^ \t\n#@)\]}'\"].*$", text[end:], re.MULTILINE):
        return text[found.start() : end + line.start()]
    return text[found.start() :]


def _imported_from(text: str, name: str) -> str | None:
    """Where `text` imports `name` from, as written (`...modeling_layers.Layer` for `from
    ...modeling_layers import Layer as name`), or None when it is not imported that way
    (it may be defined in `text`)."""
    for found in _FROM_IMPORT.finditer(text):
        names = found.group(2) if found.group(2) is not None else found.group(3)
        for imported in names.split(","):
            words = imported.split()
            if words and words[-1] == name and (len(words) == 1 or words[1:-1] == ["as"]):
                return f"{found.group(1)}.{words[0]}"
    return None


@dataclass(frozen=True, slots=True)
class ModuleName:
    """Where a file sits in its package tree."""

    root: str
    """The folder its top-level package lives in (the file's own folder for a script)."""
    dotted: str
    """`pkg.sub.engine`; `pkg.sub` for `pkg/sub/__init__.py`."""
    is_package: bool


def module_name(path: str) -> ModuleName:
    """The dotted name `path` is imported as, judged by the `__init__.py` files above it."""
    absolute = os.path.abspath(path)
    folder, filename = os.path.split(absolute)
    stem = os.path.splitext(filename)[0]
    is_package = stem == "__init__"
    parts = [] if is_package else [stem]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
        if not package:
            break
    return ModuleName(folder, ".".join(parts), is_package)


@dataclass(frozen=True, slots=True)
class Dependency:
    """Another file a result depends on, as it was read (`stamp` None: unreadable)."""

    stamp: FileStamp | None
    names: tuple[str, ...] | None
    """None when its facts were used; else only these definitions were read, found
    irrelevant, and the result holds as long as they still are."""


def still_irrelevant(text: str, names: tuple[str, ...]) -> bool:
    """Whether each of `names` is still defined in `text` with nothing a rule tracks, or
    not defined at all."""
    for name in names:
        definition = definition_text(text, name)
        if definition is not None and _RELEVANT_TEXT.search(_NOT_CODE.sub("", definition)):
            return False
    return True


class Project:
    """Resolves imports to files of the codebase and builds their facts on demand."""

    def __init__(self) -> None:
        self._facts: OrderedDict[str, tuple[FileStamp | None, ModuleFacts | None]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._kept = 0
        self._building: set[str] = set()
        self._names: dict[str, ModuleName] = {}
        self._files: dict[str, str | None] = {}
        self._located: dict[tuple[str, str], tuple[str, str] | None] = {}
        self._stamps: dict[str, FileStamp | None] = {}
        self._consulted: dict[str, dict[str, set[str] | None]] = {}
        self._texts: dict[str, str] = {}
        self._relevance: dict[tuple[str, str], tuple[bool, bool]] = {}

    def name_of(self, path: str) -> ModuleName:
        """`module_name`, remembered."""
        found = self._names.get(path)
        if found is None:
            found = self._names[path] = module_name(path)
        return found

    def absolute(self, importer: str, written: str) -> str | None:
        """The absolute dotted name of `written` (maybe relative) as imported by `importer`."""
        if not written.startswith("."):
            return written
        level = len(written) - len(written.lstrip("."))
        rest = written[level:]
        name = self.name_of(importer)
        package = name.dotted.split(".") if name.dotted else []
        if not name.is_package:
            package = package[:-1]
        if level > len(package):
            return None
        base = package[: len(package) - (level - 1)]
        parts = [*base, *rest.split(".")] if rest else base
        return ".".join(parts) or None

    def _file(self, roots: tuple[str, ...], dotted: str) -> str | None:
        key = f"{roots}|{dotted}"
        if key in self._files:
            return self._files[key]
        found = None
        relative = dotted.replace(".", os.sep)
        for root in roots:
            for candidate in (
                os.path.join(root, relative + ".py"),
                os.path.join(root, relative, "__init__.py"),
            ):
                if os.path.isfile(candidate):
                    found = candidate
                    break
            if found is not None:
                break
        self._files[key] = found
        return found

    def locate(self, importer: str, written: str) -> tuple[str, str] | None:
        """The file and the attribute name a dotted call target like `pkg.engine.train` names."""
        dotted = self.absolute(importer, written)
        if dotted is None or "." not in dotted:
            return None
        name = self.name_of(importer)
        roots: tuple[str, ...] = (name.root,)
        script_folder = os.path.dirname(os.path.abspath(importer))
        if script_folder != name.root:
            roots = (name.root, script_folder)
        module, _, attribute = dotted.rpartition(".")
        path = self._file(roots, module)
        if path is None or os.path.abspath(path) == os.path.abspath(importer):
            return None
        return path, attribute

    def target(self, importer: str, written: str, factory: bool = False) -> Target | None:
        """The function or class that a call written as `written` in `importer` reaches.

        With `factory`, only one that may build and return a tracked object.
        """
        key = (importer, written)
        if key in self._located:
            located = self._located[key]
        else:
            located = self._located[key] = self.locate(importer, written)
        if located is None:
            return None
        path, attribute = located
        if not self._relevant(path, attribute, factory):
            return None
        facts = self.facts(path)
        if facts is None:
            return None
        program = facts.program
        function = program.module_functions.get(attribute)
        owner = program.classes.get(attribute) if function is None else None
        if function is None and owner is None:
            return None
        return Target(path, facts, function, owner)

    def _text(self, path: str) -> str:
        text = self._texts.get(path)
        if text is None:
            try:
                data, info = read_bytes(path)
                # What was read decides what is followed: a dependency either way.
                self._stamps.setdefault(
                    path, FileStamp(info.st_size, info.st_mtime_ns, content_digest(data))
                )
                text = source_from_bytes(path, data).text
            except SourceError:
                text = ""
            if len(self._texts) > _CACHED_MODULES:
                self._texts.clear()
            self._texts[path] = text
        return text

    def holds_parameters(self, path: str, attribute: str) -> bool:
        """Whether `attribute` in `path` is an `nn.Module` class that builds layers or
        parameters of its own, read from its source text (no parse): its bases name a
        `Module` and its code builds a capitalised `nn.`/`torch.nn.` class or a `Parameter`."""
        text = self._text(path)
        definition = definition_text(text, attribute) if text else None
        if definition is None or not definition.startswith("class"):
            return False
        header, _, body = definition.partition("\n")
        return (
            _MODULE_HEADER.search(header) is not None
            and _LAYER_TEXT.search(_NOT_CODE.sub("", body)) is not None
        )

    def lineage(self, path: str, attribute: str) -> ClassLineage:
        """Whether `attribute` in `path` is a class deriving from `nn.Module`, directly or
        through bases defined in its file or imported into it (`Layer(GradientCheckpointingLayer)`,
        `GradientCheckpointingLayer(nn.Module)` in `modeling_layers.py`), read from source text
        (no parse), with every file read on the way."""
        read: list[str] = []
        found = self._derives_from_module(path, attribute, _NETWORK_BASE_HOPS, read)
        return ClassLineage(found, tuple(dict.fromkeys(read)))

    def _derives_from_module(self, path: str, attribute: str, hops: int, read: list[str]) -> bool:
        read.append(path)
        text = self._text(path)
        definition = definition_text(text, attribute) if text else None
        if definition is None:
            # re-exported (`from .base import Layer` in a package's `__init__.py`)
            origin = _imported_from(text, attribute) if hops else None
            located = self.locate(path, origin) if origin is not None else None
            return located is not None and self._derives_from_module(*located, hops - 1, read)
        if not definition.startswith("class"):
            return False
        header = definition.partition("\n")[0]
        if _MODULE_HEADER.search(header) is not None:
            return True
        bases = _BASES.match(header)
        if bases is None or hops == 0:
            return False
        for base in (b.strip() for b in bases.group(1).split(",")):
            if not base.isidentifier():
                continue
            origin = _imported_from(text, base)
            located = (path, base) if origin is None else self.locate(path, origin)
            if located is not None and self._derives_from_module(*located, hops - 1, read):
                return True
        return False

    def reexported(self, path: str, attribute: str) -> tuple[str, str] | None:
        """Where a name that `path` defines only by importing it comes from (a package's
        `__init__` doing `from .base import (DataLoader, ...)`), read from its text."""
        text = self._text(path)
        if not text or definition_text(text, attribute) is not None:
            return None
        name = re.escape(attribute)
        found = re.search(
            rf"^from[ \t]+([\w.]+)[ \t]+import[ \t]+(?:\([^)]*?\b{name}\b(?![ \t]+as\b)[^)]*\)"
            rf"|[^\n(]*\b{name}\b(?![ \t]+as\b))",
            text,
            re.MULTILINE,
        )
        if found is None:
            return None
        module = found.group(1)
        return self.locate(path, f"{module}{'' if module.endswith('.') else '.'}{attribute}")

    def plain_loader(self, path: str, attribute: str) -> bool:
        """Whether `attribute` in `path` is a subclass of torch's `DataLoader` that takes its
        sampler from the caller, read from its source text (no parse): its bases name
        torch's `DataLoader`, its code passes a `sampler` on, and says nothing of ranks,
        shards or a `DistributedSampler` of its own (flair's `DataLoader`)."""
        text = self._text(path)
        definition = definition_text(text, attribute) if text else None
        if text is None or definition is None or not definition.startswith("class"):
            return False
        header, _, body = definition.partition("\n")
        torch_base = _TORCH_LOADER_BASE.search(header) is not None or (
            _LOADER_BASE.search(header) is not None
            and _TORCH_LOADER_IMPORT.search(text) is not None
        )
        code = _NOT_CODE.sub("", body)
        return (
            torch_base
            and re.search(r"\bsampler\b", code) is not None
            and _OWN_SPLITTING.search(code) is None
        )

    def _relevant(self, path: str, attribute: str, factory: bool) -> bool:
        """Whether the code of `attribute`'s definition in `path` mentions anything a rule
        tracks (with `factory`: whether it may return an optimizer, scheduler or scaler)."""
        key = (path, attribute)
        known = self._relevance.get(key)
        if known is None:
            text = self._text(path)
            definition = definition_text(text, attribute) if text else None
            code = _NOT_CODE.sub("", definition) if definition is not None else ""
            known = (
                _RELEVANT_TEXT.search(code) is not None,
                not code.startswith("class") and _FACTORY_TEXT.search(code) is not None,
            )
            self._relevance[key] = known
        return known[1] if factory else known[0]

    def irrelevant(self, path: str, attribute: str) -> bool:
        """Whether `attribute`'s definition in `path` was found to mention nothing a rule
        tracks (so only that, not the rest of the file, was depended on)."""
        known = self._relevance.get((path, attribute))
        return known is not None and not known[0]

    def dependencies(self, consulted: Mapping[str, set[str] | None]) -> dict[str, Dependency]:
        """Every module `consulted` reaches, directly or through the modules whose facts
        were used, as it was read."""
        found: dict[str, Dependency] = {}
        pending = list(consulted.items())
        while pending:
            path, names = pending.pop()
            if path in found:
                earlier = found[path].names
                if earlier is None:
                    continue  # its facts were used: the strongest dependency already
                if names is not None:
                    names = names | set(earlier)
            found[path] = Dependency(
                self._stamps.get(path), None if names is None else tuple(sorted(names))
            )
            if names is None:
                pending.extend(self._consulted.get(path, {}).items())
        return found

    def facts(self, path: str) -> ModuleFacts | None:
        """The facts of the module at `path`, or None when it is unreadable, irrelevant or
        already being built (an import cycle)."""
        if path in self._facts:
            self._facts.move_to_end(path)
            return self._facts[path][1]
        if path in self._building:
            return None
        self._building.add(path)
        try:
            entry = self._build(path)
        finally:
            self._building.discard(path)
        self._keep(path, entry, entry[0].size if entry[0] is not None else 0)
        return entry[1]

    def adopt(self, path: str, stamp: FileStamp, facts: ModuleFacts, size: int) -> None:
        """Keep the facts of a file just checked, for calls into it from files checked
        later: a module is parsed once per process whichever way it is reached."""
        key = os.path.abspath(path)
        if key not in self._facts and key not in self._building:
            self._keep(key, (stamp, facts), size)

    def _keep(
        self, path: str, entry: tuple[FileStamp | None, ModuleFacts | None], size: int
    ) -> None:
        self._facts[path] = entry
        self._stamps[path] = entry[0]
        if entry[1] is not None:
            self._consulted[path] = entry[1].consulted
            self._sizes[path] = size
            self._kept += size
        while len(self._facts) > _CACHED_MODULES or self._kept > _CACHED_SOURCE:
            evicted, _ = self._facts.popitem(last=False)
            self._kept -= self._sizes.pop(evicted, 0)

    def _build(self, path: str) -> tuple[FileStamp | None, ModuleFacts | None]:
        try:
            data, info = read_bytes(path)
        except SourceError:
            return None, None
        stamp = FileStamp(info.st_size, info.st_mtime_ns, content_digest(data))
        try:
            source = source_from_bytes(path, data)
        except SourceError:
            return stamp, None
        if _RELEVANT_TEXT.search(source.text) is None or refusal(source.text) is not None:
            return stamp, None
        try:
            module = parse_module(source.text)
            facts = ModuleFacts(compile_module(module), project=self, path=path)
        except Exception:  # unparsable or too deep: its callers treat it as unseen code
            return stamp, None
        return stamp, facts
