"""The model format: .tflite bytes to a frozen IR (loader, ir, options) and back (writer, builder)."""
