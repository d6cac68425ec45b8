# Puts the project root on sys.path for pytest runs from a checkout.
