"""Restore MNIST digits from shuffled left and right halves."""
