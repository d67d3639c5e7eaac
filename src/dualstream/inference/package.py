"""The model package: a folder with ``model.json`` (schema ``MODEL_SPEC_KEYS``) and ``model.safetensors``. Every
loader goes through ``read_model_json`` and ``load_model`` (torch only once weights are read: docs/design.md)."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.sampling import SAMPLINGS
from ..flow.quantize import BOUND_RANGE
from ..text import cut, one_line

if TYPE_CHECKING:
    import torch
    from torch import nn

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
#: Larger than any real model.json (UCF-101's 101 classes take 3 KB); a bigger file is not one.
MAX_JSON_BYTES = 8 * 2**20
#: The ONNX metadata key under which ``dualstream export`` stores model.json (read by the onnx runtime).
METADATA_KEY = "dualstream.model_json"
#: Largest safetensors header read (it lists tensor names, dtypes and shapes: kilobytes in practice).
MAX_HEADER_BYTES = 64 * 2**20
PACKAGE_HINT = f"a run folder or model package (a folder with {MODEL_JSON} and {MODEL_WEIGHTS})"


class ModelPackageError(ValueError):
    """A model package that cannot be used; the message is one line naming the file and the problem."""


# key -> (JSON type accepted, required); a bool is not an integer or a number here.
_INT, _NUM, _STR, _LIST, _OBJ = "an integer", "a number", "a string", "a list", "an object"
MODEL_SPEC_KEYS: dict[str, tuple[str, bool]] = {
    "name": (_STR, True),          # a registered architecture (``dualstream models``)
    "classes": (_LIST, True),      # class names in output order, unique non-empty strings
    "frames": (_INT, True),        # frames per clip, 1..1024
    "input_size": (_INT, True),    # side of the square network input, 8..4096
    "kwargs": (_OBJ, False),       # the architecture's extra arguments (default {})
    "interval": (_INT, False),     # frames between sampled frames (default 10)
    "sampling": (_STR, False),     # interval (default) or spread (frames over the whole video)
    "window": (_INT, False),       # spread: frames a stream window covers (live, timeline), 2..100000
    "offsets": (_LIST, False),     # training clip offsets, integers 1..1_000_000
    "flow_bound": (_NUM, False),   # +-px bound of the quantised flow, 0.01..10_000 (default 20)
    "flow_method": (_STR, False),  # how the flow was computed (default dis)
    "short_side": (_INT, False),   # short side of the prepared frames, 0 = kept (default 128)
    "eval_clips": (_INT, False),   # clips per video at evaluation (default 5)
    "split": (_INT, False),        # the split trained on
    "normalisation": (_OBJ, False),  # a description of the input normalisation
}
#: Every number is finite (``NaN``, ``Infinity``, ``1e400`` are refused when parsed) and within these bounds;
#: far outside its range ``flow_bound`` overflows float32 and every probability is NaN.
_RANGES = {"frames": (1, 1024), "input_size": (8, 4096), "interval": (1, 10_000), "short_side": (0, 16_384),
           "eval_clips": (1, 10_000), "split": (1, 100), "window": (2, 100_000), "flow_bound": BOUND_RANGE}
MAX_OFFSET = 1_000_000


def _type_ok(value, kind: str) -> bool:
    types = {_INT: int, _NUM: (int, float), _STR: str, _LIST: list, _OBJ: dict}[kind]
    return isinstance(value, types) and not isinstance(value, bool)


def shown(value) -> str:
    """``value`` for a message: JSON, cut to 60 characters (a file's value can be any size)."""
    return cut(json.dumps(value) if not isinstance(value, str) else repr(value), 60)


def validate_model_spec(spec, where: str | os.PathLike, *, architectures: list[str] | None = None) -> dict:
    """``spec`` (a parsed model.json) checked against the schema, ``name`` among ``architectures`` when given."""
    def bad(problem: str) -> ModelPackageError:
        return ModelPackageError(f"{where}: {problem}")

    if not isinstance(spec, dict):
        raise bad(f"must be a JSON object, got {type(spec).__name__ if spec is not None else 'null'}")
    missing = [k for k, (_, required) in MODEL_SPEC_KEYS.items() if required and k not in spec]
    if missing:
        raise bad(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                  f"(a package records {', '.join(k for k, (_, r) in MODEL_SPEC_KEYS.items() if r)})")
    unknown = sorted(set(spec) - set(MODEL_SPEC_KEYS))
    if unknown:
        raise bad(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                  f"(known: {', '.join(MODEL_SPEC_KEYS)})")
    for key, (kind, _) in MODEL_SPEC_KEYS.items():
        if key in spec and not _type_ok(spec[key], kind):
            raise bad(f"{key!r} must be {kind}, got {shown(spec[key])}")
    for key, (lo, hi) in _RANGES.items():
        if key in spec and not lo <= spec[key] <= hi:
            raise bad(f"{key!r} must be between {lo} and {hi}, got {shown(spec[key])}")
    if architectures is not None and spec["name"] not in architectures:
        raise bad(f"unknown architecture {spec['name']!r} (known: {', '.join(architectures)})")
    classes = spec["classes"]
    if not classes or not all(isinstance(c, str) and c.strip() for c in classes):
        raise bad("'classes' must be a non-empty list of class names (non-empty strings)")
    twice = [c for c, n in Counter(classes).items() if n > 1]
    if twice:
        raise bad(f"'classes' lists {twice[0]!r} twice")
    if spec.get("sampling", "interval") not in SAMPLINGS:
        raise bad(f"'sampling' must be one of {', '.join(SAMPLINGS)}, got {shown(spec['sampling'])}")
    if spec.get("sampling") == "spread" and "window" not in spec:
        raise bad("'sampling' spread needs 'window' (frames a stream window covers)")
    offsets = spec.get("offsets", [1])
    if not (offsets and all(_type_ok(o, _INT) and 1 <= o <= MAX_OFFSET for o in offsets)):
        raise bad(f"'offsets' must be a non-empty list of integers between 1 and {MAX_OFFSET}, got {shown(offsets)}")
    if not all(isinstance(k, str) and k.isidentifier() for k in spec.get("kwargs", {})):
        raise bad(f"'kwargs' keys must be argument names, got {shown(list(spec['kwargs']))}")
    return spec


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _finite(text: str) -> float:
    """A JSON number as a float; ``1e400`` (inf in Python) is refused as NaN and Infinity are."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_model_json(data: bytes | str, where: str | os.PathLike, *, architectures: list[str] | None = None) -> dict:
    """Parse and validate the text of a ``model.json`` (a file's bytes, or the copy an export carries)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ModelPackageError(f"{where}: not a text file (model.json must be UTF-8 JSON)") from None
    try:
        spec = json.loads(text, object_pairs_hook=_reject_duplicates, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ModelPackageError(f"{where}: not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise ModelPackageError(f"{where}: not a valid model.json ({str(exc) or 'nested too deeply'})") from None
    return validate_model_spec(spec, where, architectures=architectures)


def check_file(path: Path, *, max_bytes: int | None = None, error: type[ValueError] = ModelPackageError) -> int:
    """Size of the regular file ``path``; an ``error`` when it is missing, a folder or empty."""
    if not path.exists():
        raise error(f"{path}: missing (a model package holds {MODEL_JSON} and {MODEL_WEIGHTS})")
    if not path.is_file():
        raise error(f"{path}: {'a directory' if path.is_dir() else 'not a regular file'}, expected a file")
    size = path.stat().st_size
    if size == 0:
        raise error(f"{path}: empty file (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise error(f"{path}: {size / 2**20:.1f} MB, too large for a {path.name} (at most {max_bytes / 2**20:g} MB)")
    return size


def locate_package(path: str | os.PathLike) -> Path:
    """The package folder that ``path`` names: the folder itself, or the folder of its model.json or
    model.safetensors. Any other file (an ONNX export, a checkpoint, a video) is a ModelPackageError."""
    p = Path(path)
    if not p.exists():
        raise ModelPackageError(f"{p}: not found (expected {PACKAGE_HINT})")
    if p.is_dir():
        return p
    if p.name in (MODEL_JSON, MODEL_WEIGHTS):
        return p.parent
    kind = {".onnx": "an ONNX file", ".pt": "a TorchScript or torch.save file", ".pth": "a torch.save file",
            ".safetensors": "a weights file without its model.json"}.get(p.suffix.lower(), "a file")
    raise ModelPackageError(f"{p}: {kind}; this command needs {PACKAGE_HINT}")


def read_model_json(path: str | os.PathLike, *, architectures: list[str] | None = None) -> tuple[Path, dict]:
    """(package folder, validated spec) for a package folder, run folder or its model.json."""
    folder = locate_package(path)
    if not (folder / MODEL_JSON).exists():
        raise ModelPackageError(f"{folder}: no {MODEL_JSON} (not a trained run or model package)")
    return folder, read_spec_file(folder / MODEL_JSON, architectures=architectures)


def read_spec_file(path: Path, *, architectures: list[str] | None = None) -> dict:
    check_file(path, max_bytes=MAX_JSON_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_model_json(data, path, architectures=architectures)


_SAFETENSORS_DTYPES = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32", "F64",
                       "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}
_FLOAT_DTYPES = {d for d in _SAFETENSORS_DTYPES if d.startswith(("F", "BF"))}


def safetensors_header(path: str | os.PathLike, *, error: type[ValueError] = ModelPackageError
                       ) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors file's header, after checking the file is one and is
    complete. Nothing is unpickled or loaded: a pickle or a ``torch.save`` zip is named and refused."""
    path = Path(path)
    size = check_file(path, error=error)

    def bad(problem: str) -> ValueError:
        return error(f"{path}: {problem}")

    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        raw = fh.read(n) if 2 <= n <= min(size - 8, MAX_HEADER_BYTES) else b""
    try:
        header = json.loads(raw.decode("utf-8")) if raw[:1] == b"{" else None  # an object, when it parses
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if header is None:  # not safetensors: say what it is, when that is recognisable
        if 2 <= n <= MAX_HEADER_BYTES and n > size - 8:
            raise bad(f"truncated (its header alone would be {n} bytes, the file has {size})")
        if head[:4] == b"PK\x03\x04":
            raise bad("a zip archive (a torch.save checkpoint?), not safetensors; refused, it is never unpickled")
        if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"}", b"]"):
            raise bad("a pickle, not safetensors; refused, it is never unpickled")
        if len(head) < 8:
            raise bad(f"truncated ({size} bytes; a safetensors file starts with an 8-byte header length)")
        raise bad("not a safetensors file (no valid header)")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    data_bytes = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(info, dict) and info.get("dtype") in _SAFETENSORS_DTYPES
              and isinstance(info.get("shape"), list) and all(_type_ok(d, _INT) and d >= 0 for d in info["shape"])
              and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2
              and all(_type_ok(o, _INT) and o >= 0 for o in info["data_offsets"])
              and info["data_offsets"][0] <= info["data_offsets"][1])
        if not ok:
            raise bad(f"not a safetensors file (bad header entry for {name!r})")
        if info["data_offsets"][1] > data_bytes:
            raise bad(f"truncated: tensor {name!r} ends at byte {info['data_offsets'][1]} of the data, "
                      f"the file holds {data_bytes} bytes of data")
        tensors[name] = (info["dtype"], tuple(info["shape"]))
    if not tensors:
        raise bad("holds no tensors")
    return tensors


def load_model(path: str | Path, *, device: "str | torch.device" = "cpu") -> tuple[nn.Module, dict]:
    """A ready model (eval mode) and its spec from a run folder or model package, every file checked first."""
    from ..models import create_model, list_models

    folder, spec = read_model_json(path, architectures=list_models())
    try:
        model = create_model(spec["name"], num_classes=len(spec["classes"]), frames=spec["frames"],
                             input_size=spec["input_size"], **spec.get("kwargs", {}))
    except (TypeError, ValueError) as exc:  # arguments the architecture does not take, or values it refuses
        raise ModelPackageError(f"{folder / MODEL_JSON}: {spec['name']} cannot be built from it "
                                f"({one_line(exc)})") from None
    what = f"{spec['name']} with the {len(spec['classes'])} classes of {MODEL_JSON}"
    model.load_state_dict(read_weights(folder / MODEL_WEIGHTS, model, what=what))
    return model.to(device).eval(), spec


def read_weights(path: Path, model: nn.Module, *, what: str = "this model",
                 error: type[ValueError] = ModelPackageError, mismatch: type[ValueError] | None = None
                 ) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, checked to load into ``model`` strictly: complete
    safetensors, the model's names, shapes and kinds (from the header, before any tensor is read), all finite.
    Raises ``error`` in one line (``mismatch``, when given, for intact weights of another architecture)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = safetensors_header(path, error=error)
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(header)), sorted(set(header) - set(own))
    shapes = [k for k in own if k in header and tuple(own[k].shape) != header[k][1]]
    kinds = [k for k in own if k in header and own[k].is_floating_point() != (header[k][0] in _FLOAT_DTYPES)]
    if missing or extra or shapes or kinds:
        if shapes:
            detail = f"{shapes[0]} is {header[shapes[0]][1]}, expected {tuple(own[shapes[0]].shape)}"
        elif kinds:
            detail = f"{kinds[0]} is {header[kinds[0]][0]}, expected {str(own[kinds[0]].dtype).replace('torch.', '')}"
        else:
            names = (missing or extra)[:2]
            detail = (f"{len(missing)} missing and {len(extra)} unexpected tensors, e.g. "
                      f"{'missing' if missing else 'unexpected'} {', '.join(names)}")
        raise (mismatch or error)(f"{path}: weights do not fit {what} (another architecture or class count: {detail})")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise error(f"{path}: not a readable safetensors file ({one_line(exc)})") from None
    for name, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise error(f"{path}: tensor {name} holds NaN or infinite values (a diverged or damaged model); refused")
    return state
