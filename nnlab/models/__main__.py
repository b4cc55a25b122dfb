"""``python -m nnlab.models``: train (or check) every lab model of the zoo."""
from nnlab.models.zoo import main

main()
