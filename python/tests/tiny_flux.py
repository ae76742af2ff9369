"""A FLUX pipeline small enough to run on a CPU, for the tests of
hoist.diffusers and the self-checks of the Python benchmarks: diffusers'
own FluxTransformer2DModel, AutoencoderKL and transformers' CLIPTextModel
and T5EncoderModel with tiny configurations and seeded random weights,
saved in bf16 with save_pretrained, and the tokenizer and scheduler
folders of a make-pipeline FLUX.1-dev (which is what they test too).

    python tiny_flux.py HOIST_CLI OUT     # writes the pipeline into OUT
"""
import os
import shutil
import subprocess
import sys
import tempfile


def write_tiny_flux(cli, out):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=[4, 6, 6])
    clip = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
        vocab_size=1000, hidden_act="quick_gelu", projection_dim=32,
        max_position_embeddings=77))
    t5 = T5EncoderModel(T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                 num_heads=4, feed_forward_proj="gated-gelu",
                                 relative_attention_num_buckets=8, is_encoder_decoder=False))
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    with tempfile.TemporaryDirectory() as tmp:
        made = os.path.join(tmp, "made")
        subprocess.run([str(cli), "make-pipeline", "--preset", "flux1-dev", "--scale", "0.0001",
                        made], check=True, stdout=subprocess.DEVNULL)
        from transformers import CLIPTokenizer, T5TokenizerFast

        pipe = FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(made, subfolder="scheduler"),
            vae=vae, text_encoder=clip,
            tokenizer=CLIPTokenizer.from_pretrained(made, subfolder="tokenizer"),
            text_encoder_2=t5,
            tokenizer_2=T5TokenizerFast.from_pretrained(made, subfolder="tokenizer_2"),
            transformer=transformer)
        pipe.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
        for name in ("tokenizer", "tokenizer_2", "scheduler"):  # make-pipeline's own files
            shutil.rmtree(os.path.join(out, name))
            shutil.copytree(os.path.join(made, name), os.path.join(out, name))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tiny_flux.py HOIST_CLI OUT")
    write_tiny_flux(sys.argv[1], sys.argv[2])
