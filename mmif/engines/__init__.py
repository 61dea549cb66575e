"""mmif.engines"""
