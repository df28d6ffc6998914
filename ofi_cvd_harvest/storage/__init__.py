"""File access for raw and derived partitions: layout (paths) and a filesystem wrapper with
atomic writes. Everything that touches data files goes through here."""
