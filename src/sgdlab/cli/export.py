"""``sgdlab export``: a saved model as an ONNX file, to run without sgdlab (onnxruntime)."""

import os

from ..errors import ExportError


def cmd_export(args):
    from ..checkpoint import load_model
    from ..onnx_export import OPSET, export_onnx, output_names

    source = os.path.join(args.model, "model.safetensors") if os.path.isdir(args.model) else args.model
    if os.path.isdir(args.onnx):
        raise ExportError(f"--onnx {args.onnx!r} is a folder: give a file name such as model.onnx")
    if os.path.exists(args.onnx) and not args.overwrite:
        raise ExportError(f"{args.onnx!r} already exists: pass --overwrite to replace it or choose another --onnx")
    model = load_model(source)
    export_onnx(model, args.onnx)
    shape = ", ".join(map(str, ("batch", *model.input_shape)))
    print(f"wrote {args.onnx} (ONNX opset {OPSET}): input 'input' float32 ({shape}) -> "
          f"{', '.join(output_names(model))}")
    return 0


def add_parser(sub):
    from ..onnx_export import CONVERTERS, OPSET  # the layer list from the exporter's registry

    export = sub.add_parser("export", help="write a saved model as ONNX (runs in onnxruntime, no sgdlab needed)",
                            description=f"Export a model.safetensors (or a run folder) to ONNX opset {OPSET}; layers: "
                                        f"{', '.join(CONVERTERS)} (BatchNorm in inference form, Dropout left out).  "
                                        "Classifiers output 'logits' and 'probabilities', regressors "
                                        "'predictions'; the batch dimension is dynamic.  Needs "
                                        "pip install 'sgdlab[onnx]'.")
    export.add_argument("model", metavar="MODEL", help="a model.safetensors written by sgdlab, or its run folder")
    export.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write, e.g. model.onnx")
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    export.set_defaults(handler=cmd_export)
