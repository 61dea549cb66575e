"""mmif.metrics"""
