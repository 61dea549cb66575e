"""mmif.losses"""
