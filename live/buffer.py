"""The rolling window of embeddings the sequence model reads."""
import numpy as np


class EmbeddingBuffer:
    """The last `seq_len` embeddings, oldest first, zero-padded at the end with the mask false
    there: exactly the layout training uses for partial and full windows."""

    def __init__(self, seq_len, feature_size):
        self.features = np.zeros((1, seq_len, feature_size), dtype=np.float32)
        self.mask = np.zeros((1, seq_len), dtype=bool)
        self.filled = 0

    @property
    def seq_len(self):
        return self.mask.shape[1]

    def append(self, embedding):
        if self.filled < self.seq_len:
            self.features[0, self.filled] = embedding
            self.mask[0, self.filled] = True
            self.filled += 1
        else:
            self.features[0, :-1] = self.features[0, 1:]
            self.features[0, -1] = embedding
