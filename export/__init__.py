"""Export: ONNX, FP16/INT8 graphs, TensorRT engines and bundles."""
