"""Pre-training: masked-LM / next-sentence instances (create_pretraining_data.py) and their datasets."""
