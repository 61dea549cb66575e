"""mmif.fusion"""
