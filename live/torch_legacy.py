"""Read a legacy-format (pre-zip) PyTorch state dict without torch and without pickle code.

The legacy format is a chain of pickles: a magic number, a protocol version, system info,
the object tree (tensors refer to storages by persistent id), the list of storage keys,
then each storage's raw bytes. A restricted unpickler resolves only the few globals a
state dict needs; anything else in the file is refused rather than run.

Nothing in the file is trusted: every storage size is checked against the bytes really there,
every tensor's offset, sizes and strides against its storage, every object against the type
it must have, and BUILD (setstate) is refused on anything but a dict. Arrays are gathered with
bounds-checked indexing, never with raw strides, so a hostile file gets an error, not a read
outside its buffers.
"""
import collections
import io
import math
import os
import pickle
import pickletools
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_DIMS, MAX_ELEMENTS = 8, 1 << 28  # far above any backbone layer; keeps a hostile file from
                                     # asking for terabytes
MAX_FILE_BYTES, MAX_MEMO = 1 << 30, 1 << 20  # a memo index is an allocation size to the unpickler

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The file holds something other than plain tensors in dicts."""


class _Refuses:
    """Pickle's BUILD opcode would set attributes on these objects; a checkpoint never needs it."""

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"refusing to set the state of a {type(self).__name__} from a checkpoint")


class _StorageType(_Refuses):
    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage(_Refuses):
    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None  # filled once the raw bytes are read


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _TensorRef(_Refuses):
    """A view into a storage, resolved to a numpy array once storages are loaded."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UnsafeCheckpointError("a tensor whose storage is not a storage")
        if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
                and len(size) == len(stride) <= MAX_DIMS
                and all(_is_int(v) and v >= 0 for v in (offset, *size, *stride))):
            raise UnsafeCheckpointError("a tensor with a malformed offset, size or stride")
        if math.prod(size) > MAX_ELEMENTS or offset > MAX_ELEMENTS:
            raise UnsafeCheckpointError(f"a tensor of {list(size)} elements, more than any backbone has")
        if any(step == 0 and n > 1 for n, step in zip(size, stride)):
            raise UnsafeCheckpointError("a tensor that repeats one element along an axis (stride 0)")
        if all(size):  # the last element it reads must lie inside its storage
            last = offset + sum((n - 1) * step for n, step in zip(size, stride))
            if last >= storage.numel:
                raise UnsafeCheckpointError(f"a tensor of size {list(size)} reads past its storage of "
                                            f"{storage.numel} elements")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        data = self.storage.data
        if data is None:
            raise UnsafeCheckpointError("a tensor whose storage is not in the file")
        # Gather by explicit indices: numpy checks every one against the buffer.
        index = np.full(self.size, self.offset, dtype=np.int64)
        for axis, (n, step) in enumerate(zip(self.size, self.stride)):
            shape = [1] * len(self.size)
            shape[axis] = n
            index = index + (np.arange(n, dtype=np.int64) * step).reshape(shape)
        try:
            return data[index] if self.size else data[self.offset:self.offset + 1].reshape(())
        except IndexError:
            raise UnsafeCheckpointError("a tensor reads outside its storage") from None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
        if len(pid) < 5:
            raise UnsafeCheckpointError("a malformed storage reference")
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise UnsafeCheckpointError("storage views are not supported")
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_int(numel)
                and 0 <= numel <= MAX_ELEMENTS):
            raise UnsafeCheckpointError("a malformed storage reference")
        storage = self.storages.setdefault(key, _Storage(storage_type.dtype, numel))
        if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
            raise UnsafeCheckpointError(f"storage {key} is declared twice, differently")
        return storage


def _checked(f):
    """Walk the next pickle's opcodes before anything is built: bounded memo indexes, and every
    declared length within the file (pickletools reads no more bytes than are there)."""
    start = f.tell()
    for opcode, argument, _ in pickletools.genops(f):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET") \
                and int(argument) > MAX_MEMO:
            raise UnsafeCheckpointError(f"a pickle memo index of {argument}")
    f.seek(start)
    return f


def _plain_load(f):
    """Unpickle one of the header records, which hold only numbers, strings and dicts."""
    return _RestrictedUnpickler(_checked(f)).load()


def load_state_dict(path):
    """Return {name: numpy array} from a legacy-format torch checkpoint. Any malformed content
    raises UnsafeCheckpointError, whatever part of the reader it trips."""
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise UnsafeCheckpointError(f"{path} is larger than any backbone checkpoint")
    with open(path, "rb") as file:
        data = file.read()
    try:
        return _load(io.BytesIO(data), path)
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError,
            OverflowError, MemoryError, RecursionError, struct.error) as exc:
        raise UnsafeCheckpointError(f"{path} is malformed ({type(exc).__name__}: {str(exc)[:120]})") from None


def _load(f, path):
    file_size = len(f.getbuffer())
    if _plain_load(f) != LEGACY_MAGIC:
        raise UnsafeCheckpointError(f"{path} is not a legacy-format PyTorch file")
    if _plain_load(f) != LEGACY_PROTOCOL:
        raise UnsafeCheckpointError(f"{path} has an unsupported protocol version")
    sys_info = _plain_load(f)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise UnsafeCheckpointError("big-endian or malformed checkpoints are not supported")
    unpickler = _RestrictedUnpickler(_checked(f))
    tree = unpickler.load()
    storage_keys = _plain_load(f)
    if not (isinstance(storage_keys, list) and all(isinstance(k, str) for k in storage_keys)):
        raise UnsafeCheckpointError(f"{path} has a malformed storage list")
    for key in storage_keys:
        storage = unpickler.storages.get(key)
        if storage is None or storage.data is not None:
            raise UnsafeCheckpointError(f"{path} lists storage {key!r} that no tensor uses, or twice")
        (numel,) = struct.unpack("<q", f.read(8).ljust(8, b"\0"))
        if numel != storage.numel:
            raise UnsafeCheckpointError(f"{path}: storage {key!r} says {numel} elements, its reference "
                                        f"{storage.numel}")
        if numel * storage.dtype.itemsize > file_size - f.tell():
            raise UnsafeCheckpointError(f"{path} is truncated: storage {key!r} needs "
                                        f"{numel * storage.dtype.itemsize} bytes, fewer are left")
        raw = f.read(numel * storage.dtype.itemsize)
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if isinstance(tree, dict) and isinstance(tree.get("state_dict"), dict):
        tree = tree["state_dict"]
    if not isinstance(tree, dict) or not all(isinstance(name, str) for name in tree):
        raise UnsafeCheckpointError(f"{path} does not hold a state dict")
    tensors = {name: value for name, value in tree.items() if isinstance(value, _TensorRef)}
    # Without stride 0 a tensor can't hold more elements than its storage, but many tensors can
    # view one storage: bound their total by the data really in the file.
    if sum(math.prod(t.size) for t in tensors.values()) > 4 * sum(s.numel for s in unpickler.storages.values()) + 1024:
        raise UnsafeCheckpointError(f"{path}: its tensors view the same data many times over")
    return {name: value.to_numpy() for name, value in tensors.items()}
