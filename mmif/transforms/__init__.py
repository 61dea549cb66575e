"""mmif.transforms"""
