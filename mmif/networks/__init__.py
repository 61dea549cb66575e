"""mmif.networks"""
