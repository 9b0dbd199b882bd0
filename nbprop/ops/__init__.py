"""The op families: Function subclasses whose forward and backward call kernels through the backend."""
