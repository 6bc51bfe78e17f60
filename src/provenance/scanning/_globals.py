"""The globals an allowed pickle may import: an allow-list, never a deny-list.

``TORCH`` is exactly the set ``torch.load(weights_only=True)`` accepts in torch 2.13
(``torch/_weights_only_unpickler.py``: ``_get_allowed_globals``); tests/unit/test_scan_pickle.py
checks it against the installed torch. ``NUMPY`` is what numpy and joblib write for plain arrays,
dtypes and scalars (object arrays need nothing more: their elements are pickled objects, checked
here like any other). ``SKLEARN`` is a few estimators whose state is only arrays and numbers, so a
scaler or a linear model can be allowed without allowing any callable a pipeline may hold.
"""

from __future__ import annotations

_TORCH_DTYPES = [
    "bfloat16",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float4_e2m1fn_x2",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int1",
    "int16",
    "int2",
    "int3",
    "int32",
    "int4",
    "int5",
    "int6",
    "int64",
    "int7",
    "int8",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
    "uint1",
    "uint16",
    "uint2",
    "uint3",
    "uint32",
    "uint4",
    "uint5",
    "uint6",
    "uint64",
    "uint7",
    "uint8",
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "Size",
    "Tensor",
    "device",
]
_TORCH_STORAGES = [
    "BFloat16",
    "Bool",
    "Byte",
    "Char",
    "ComplexDouble",
    "ComplexFloat",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "QInt32",
    "QInt8",
    "QUInt2x4",
    "QUInt4x2",
    "QUInt8",
    "Short",
]
_TORCH_TENSORS = [
    "BFloat16",
    "Bool",
    "Byte",
    "Char",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "Short",
]
_CUDA_STORAGES = [s for s in _TORCH_STORAGES if not s.startswith("Q")]
_SPARSE_TENSORS = ["BFloat16", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short"]
_TORCH_REBUILD = [
    "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_wrapper_subclass",
]

TORCH: frozenset[str] = frozenset(
    [
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
    ]
    + [f"torch.{n}" for n in _TORCH_DTYPES]
    + [f"torch.{n}Storage" for n in _TORCH_STORAGES]
    + [f"torch.{n}Tensor" for n in _TORCH_TENSORS]
    + [f"torch.cuda.{n}Storage" for n in _CUDA_STORAGES]
    + [f"torch.cuda.{n}Tensor" for n in _TORCH_TENSORS]
    + [f"torch.cuda.sparse.{n}Tensor" for n in _SPARSE_TENSORS]
    + [f"torch.sparse.{n}Tensor" for n in _SPARSE_TENSORS]
    + [f"torch._utils.{n}" for n in _TORCH_REBUILD]
)

NUMPY: frozenset[str] = frozenset(
    [
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "joblib.numpy_pickle.NumpyArrayWrapper",
    ]
)

SKLEARN: frozenset[str] = frozenset(
    [
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.StandardScaler",
    ]
)

ALLOWED: frozenset[str] = TORCH | NUMPY | SKLEARN
# Objects SETITEM(S) may fill besides plain dicts (torch state dicts are OrderedDicts).
MAPPINGS = frozenset({"collections.OrderedDict", "collections.Counter"})
JOBLIB_ARRAY = "joblib.numpy_pickle.NumpyArrayWrapper"
