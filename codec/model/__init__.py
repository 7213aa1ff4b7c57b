"""The codec model: encoder, residual quantizer and decoder put together (``codec``), SEANet and Vocos networks,
activations, the layer protocol (``layer``: each layer's reach and streaming step), chunked coding of long audio
and streaming of causal models.
"""
