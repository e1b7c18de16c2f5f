"""One folder per task (data + pipeline (+ metrics)); ``common`` holds what every task shares."""
