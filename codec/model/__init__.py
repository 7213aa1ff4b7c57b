"""The codec model: encoder, residual quantizer and decoder put together (``codec``), SEANet and Vocos networks,
activations, and chunked (streaming) coding of long audio.
"""
