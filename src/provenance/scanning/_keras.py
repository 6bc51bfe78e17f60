"""Keras model configs read as JSON with the loader's structure, and judged by an allow-list.

``keras.saving`` rebuilds every ``{"class_name": …, "module": …, "config": …}`` object it meets,
importing ``module`` and deserializing ``config`` recursively; ``Lambda`` layers carry marshalled
bytecode, custom objects import user code, and functions are looked up by name (CVE-2025-1550,
CVE-2025-8747, CVE-2025-9905: legacy .h5 configs ignore ``safe_mode``). So every object in the
document, however deeply it nests, must be a built-in Keras class on ``_CLASSES`` from a
``keras`` module, and every function a built-in activation, loss or metric by name. The walk has
a node limit and a document over it is refused, never truncated.
"""

from __future__ import annotations

from typing import Any

MAX_NODES = 2_000_000

_LAYERS = (
    "InputLayer Dense EinsumDense Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose "
    "Conv3DTranspose DepthwiseConv1D DepthwiseConv2D SeparableConv1D SeparableConv2D "
    "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D "
    "GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPooling1D "
    "GlobalMaxPooling2D GlobalMaxPooling3D Flatten Reshape Permute RepeatVector Dropout "
    "SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise GaussianDropout AlphaDropout "
    "ActivityRegularization Identity Masking BatchNormalization LayerNormalization "
    "GroupNormalization UnitNormalization RMSNormalization Embedding LSTM GRU SimpleRNN "
    "LSTMCell GRUCell SimpleRNNCell Bidirectional TimeDistributed Activation ReLU LeakyReLU "
    "PReLU ELU Softmax Add Subtract Multiply Average Maximum Minimum Concatenate Dot "
    "MultiHeadAttention Attention AdditiveAttention GroupQueryAttention ZeroPadding1D "
    "ZeroPadding2D ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D "
    "UpSampling3D Rescaling Normalization Resizing CenterCrop Sequential Functional Model"
)
_OTHERS = (
    "GlorotUniform GlorotNormal HeNormal HeUniform LecunNormal LecunUniform Zeros Ones Constant "
    "RandomNormal RandomUniform TruncatedNormal Orthogonal IdentityInitializer VarianceScaling "
    "L1 L2 L1L2 OrthogonalRegularizer MaxNorm MinMaxNorm NonNeg UnitNorm Adam AdamW SGD RMSprop "
    "Adagrad Adadelta Adamax Nadam Ftrl Lion ExponentialDecay PiecewiseConstantDecay "
    "PolynomialDecay InverseTimeDecay CosineDecay CosineDecayRestarts "
    "MeanSquaredError MeanAbsoluteError BinaryCrossentropy CategoricalCrossentropy "
    "SparseCategoricalCrossentropy Huber Accuracy BinaryAccuracy CategoricalAccuracy "
    "SparseCategoricalAccuracy AUC Precision Recall Mean MeanMetricWrapper "
    "DTypePolicy FloatDTypePolicy __tuple__ __numpy__ __bytes__ __keras_tensor__"
)
CLASSES = frozenset((_LAYERS + " " + _OTHERS).split())
FUNCTIONS = frozenset(
    [
        "relu",
        "relu6",
        "sigmoid",
        "softmax",
        "log_softmax",
        "tanh",
        "linear",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "gelu",
        "silu",
        "swish",
        "exponential",
        "hard_sigmoid",
        "hard_silu",
        "leaky_relu",
        "mish",
        "mse",
        "mae",
        "mean_squared_error",
        "mean_absolute_error",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "accuracy",
    ]
)
REFUSED = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda", "__lambda__", "TFSMLayer"})


class KerasError(Exception):
    """The config is refused; the message names the object."""


def _module_ok(module: Any) -> bool:
    return module is None or (
        isinstance(module, str) and (module == "keras" or module.startswith("keras."))
    )


def check_config(config: Any) -> None:
    """Raise KerasError for the first object outside the allow-list (or too many nodes)."""
    stack: list[tuple[Any, str]] = [(config, "$")]
    nodes = 0
    while stack:
        node, where = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise KerasError(f"more than {MAX_NODES} JSON nodes: refused, not walked in part")
        if isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        if "class_name" in node:
            cls = node["class_name"]
            if not isinstance(cls, str):
                raise KerasError(f"class_name at {where} is not a string")
            module = node.get("module")
            registered = node.get("registered_name")
            name = ""
            if isinstance(node.get("config"), dict):
                name = str(node["config"].get("name", ""))
            label = f"{cls!r}" + (f" ({name})" if name else "") + f" at {where}"
            if cls in REFUSED:
                raise KerasError(f"Lambda layer {label}: its code runs on load")
            if not _module_ok(module):
                raise KerasError(f"object {label} from module {module!r} (custom code)")
            if cls == "function":
                fn = node.get("config")
                if not isinstance(fn, str) or fn not in FUNCTIONS or registered not in (None, fn):
                    raise KerasError(f"function {fn!r} at {where} is not a built-in one")
            elif cls not in CLASSES:
                raise KerasError(f"class {label} is not a built-in Keras class on the allow-list")
            elif registered not in (None, cls):
                raise KerasError(f"custom object {registered!r} at {where}")
        for k, v in node.items():
            if k in ("activation", "loss") and isinstance(v, str) and v not in FUNCTIONS:
                raise KerasError(f"{k} {v!r} at {where} is not a built-in function")
            stack.append((v, f"{where}.{k}"))
