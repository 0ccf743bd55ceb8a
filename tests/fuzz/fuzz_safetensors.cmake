# The safetensors header parser (src/encoder/safetensors.c); seeds in corpus/safetensors/.
kb_add_fuzzer(safetensors LIBS kb_encoder)
