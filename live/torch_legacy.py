"""Read a legacy-format (pre-zip) PyTorch state dict without torch and without pickle code.

The legacy format is a chain of pickles: a magic number, a protocol version, system info,
the object tree (tensors refer to storages by persistent id), the list of storage keys,
then each storage's raw bytes. A restricted unpickler resolves only the few globals a
state dict needs; anything else in the file is refused rather than run.
"""
import collections
import pickle
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

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


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None  # filled once the raw bytes are read


class _TensorRef:
    """A view into a storage, resolved to a numpy array once storages are loaded."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        item = self.storage.dtype.itemsize
        base = self.storage.data[self.offset:]
        return np.lib.stride_tricks.as_strided(
            base, shape=self.size, strides=[s * item for s in self.stride]).copy()


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
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise UnsafeCheckpointError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def _plain_load(f):
    """Unpickle one of the header records, which hold only numbers, strings and dicts."""
    return _RestrictedUnpickler(f).load()


def load_state_dict(path):
    """Return {name: numpy array} from a legacy-format torch checkpoint."""
    with open(path, "rb") as f:
        if _plain_load(f) != LEGACY_MAGIC:
            raise UnsafeCheckpointError(f"{path} is not a legacy-format PyTorch file")
        if _plain_load(f) != LEGACY_PROTOCOL:
            raise UnsafeCheckpointError(f"{path} has an unsupported protocol version")
        sys_info = _plain_load(f)
        if not sys_info.get("little_endian", True):
            raise UnsafeCheckpointError("big-endian checkpoints are not supported")
        unpickler = _RestrictedUnpickler(f)
        tree = unpickler.load()
        storage_keys = _plain_load(f)
        for key in storage_keys:
            storage = unpickler.storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise UnsafeCheckpointError(f"{path} is truncated")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if "state_dict" in tree and isinstance(tree["state_dict"], dict):
        tree = tree["state_dict"]
    return {name: value.to_numpy() for name, value in tree.items() if isinstance(value, _TensorRef)}
