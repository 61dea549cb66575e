from __future__ import annotations

import unittest

import torch
from monai.data import MetaTensor
from parameterized import parameterized

from mmif.fusion import (
    AverageFusion,
    FusionMethod,
    available_fusion_methods,
    check_fusion_input,
    get_fusion_method,
    register_fusion_method,
)
from mmif.fusion import base as fusion_base

BAD_INPUTS = [
    ("3_dims", torch.rand(2, 8, 8), "dims"),
    ("6_dims", torch.rand(1, 2, 4, 4, 4, 4), "dims"),
    ("one_source", torch.rand(1, 1, 8, 8), "at least 2 sources"),
    ("8bit_range", torch.rand(1, 2, 8, 8) * 255, "divid"),
    ("negative", torch.rand(1, 2, 8, 8) - 0.5, "[0, 1]"),
    ("nan", torch.full((1, 2, 4, 4), float("nan")), "NaN"),
    ("numpy", torch.rand(1, 2, 4, 4).numpy(), "torch.Tensor"),
    ("empty", torch.rand(1, 2, 0, 4), "empty"),
]


class TestInputValidation(unittest.TestCase):
    @parameterized.expand(BAD_INPUTS)
    def test_bad_input_raises_value_error_naming_the_method(self, _, image, fragment):
        with self.assertRaises(ValueError) as ctx:
            AverageFusion()(image)
        self.assertIn("AverageFusion", str(ctx.exception))
        self.assertIn(fragment, str(ctx.exception))

    def test_accepts_integer_and_metatensor_input(self):
        ints = torch.randint(0, 2, (1, 2, 4, 4))
        self.assertTrue(check_fusion_input(ints).is_floating_point())
        meta = MetaTensor(torch.rand(1, 3, 4, 4, 4))
        out = AverageFusion()(meta)
        self.assertEqual(type(out), torch.Tensor)
        self.assertEqual(tuple(out.shape), (1, 1, 4, 4, 4))

    def test_spatial_dims_from_input(self):
        self.assertEqual(FusionMethod.spatial_dims(torch.zeros(1, 2, 4, 4)), 2)
        self.assertEqual(FusionMethod.spatial_dims(torch.zeros(1, 2, 4, 4, 4)), 3)

    def test_base_class_needs_fuse(self):
        with self.assertRaises(NotImplementedError):
            FusionMethod()(torch.rand(1, 2, 4, 4))

    def test_wrong_output_shape_is_caught(self):
        class Broken(FusionMethod):
            def fuse(self, image):
                return image

        with self.assertRaises(RuntimeError):
            Broken()(torch.rand(1, 2, 4, 4))


class TestRegistry(unittest.TestCase):
    def setUp(self):
        self._saved = dict(fusion_base._REGISTRY)

    def tearDown(self):
        fusion_base._REGISTRY.clear()
        fusion_base._REGISTRY.update(self._saved)

    def test_builtin_names(self):
        names = available_fusion_methods()
        for name in ("average", "maxabs", "min", "pca", "laplacian", "dwt", "gff"):
            self.assertIn(name, names)
        self.assertEqual(names, sorted(names))

    def test_get_returns_new_configured_instances(self):
        a, b = get_fusion_method("laplacian", levels=2), get_fusion_method("LAPLACIAN")
        self.assertIsInstance(a, FusionMethod)
        self.assertIsNot(a, b)
        self.assertEqual((a.levels, b.levels), (2, 4))

    def test_unknown_name_lists_available_and_suggests(self):
        with self.assertRaises(ValueError) as ctx:
            get_fusion_method("laplacain")
        msg = str(ctx.exception)
        self.assertIn("'laplacian'", msg)  # the suggestion
        for name in available_fusion_methods():
            self.assertIn(name, msg)

    def test_unknown_argument(self):
        with self.assertRaises(ValueError) as ctx:
            get_fusion_method("dwt", level=2)
        self.assertIn("'level'", str(ctx.exception))
        self.assertIn("levels", str(ctx.exception))

    @parameterized.expand(
        [
            ("laplacian", {"levels": -1}),
            ("laplacian", {"levels": 2.5}),
            ("laplacian", {"detail_rule": "biggest"}),
            ("dwt", {"levels": 0}),
            ("dwt", {"wavelet": "morl"}),  # continuous wavelet
            ("dwt", {"mode": "mirror"}),
            ("dwt", {"approx_rule": "median"}),
            ("gff", {"base_radius": 0}),
            ("gff", {"saliency_size": 10}),
            ("gff", {"detail_weight_eps": 0.0}),
        ]
    )
    def test_bad_constructor_arguments(self, name, kwargs):
        with self.assertRaises(ValueError) as ctx:
            get_fusion_method(name, **kwargs)
        self.assertIn("Fusion", str(ctx.exception))  # names the class

    def test_register_decorator_and_duplicates(self):
        @register_fusion_method("test_first_source")
        class FirstSource(FusionMethod):
            def fuse(self, image):
                return image[:, :1]

        self.assertIn("test_first_source", available_fusion_methods())
        x = torch.rand(2, 3, 5, 6)
        torch.testing.assert_close(get_fusion_method("test_first_source")(x), x[:, :1])
        register_fusion_method("test_first_source", FirstSource)  # same target again: allowed
        with self.assertRaises(ValueError):
            register_fusion_method("test_first_source", AverageFusion)
        with self.assertRaises(ValueError):
            register_fusion_method("  ")

    def test_lazy_registration(self):
        register_fusion_method("test_lazy_average", "mmif.fusion.classical:AverageFusion")
        self.assertIn("test_lazy_average", available_fusion_methods())
        self.assertIsInstance(get_fusion_method("test_lazy_average"), AverageFusion)
        with self.assertRaises(ValueError):
            register_fusion_method("test_lazy_bad", "mmif.fusion.classical.AverageFusion")


if __name__ == "__main__":
    unittest.main()
