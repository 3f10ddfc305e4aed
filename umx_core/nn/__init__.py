"""The model maths in Keras: STFT/ISTFT layers, the BLSTM spectral filter, joint filters and X-UMX's
bridge between them, the EM (multichannel Wiener) layer and the end-to-end `UMX` model. TensorFlow
and Keras only."""

# the Keras registration package of every layer and model here (saved files name it, so it never changes)
PACKAGE = "umx_core"
