"""Mechanisms shared by the bookstore apps. Business rules live in the apps, never here."""
