"""Multiple choice (SWAG) as the BERT paper fine-tunes it: each choice is one
``[CLS] context [SEP] start ending [SEP]`` sequence, one vector scores its [CLS], a softmax runs
over the choices."""
