"""Carriers behind one small interface. Connectors never import the database."""
