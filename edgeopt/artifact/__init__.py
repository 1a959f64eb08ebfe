"""The artifact: written atomically, hashed and verified; its manifest and reports."""
