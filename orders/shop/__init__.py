"""The shopper's side: catalogue, carts, recovery emails, status and progress."""
