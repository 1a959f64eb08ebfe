"""The model graph: untrusted ONNX loaded and normalized, inspected, checked, rewritten; its family and layouts."""
