using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

// A LLaMA-family decoder (llama, mistral, qwen2) in the shape of Hugging Face's modeling_llama.py:
// config -> RMSNorm -> rotary -> attention -> MLP -> decoder layer -> model -> head.
// Field names are snake_case so that state-dict keys equal checkpoint keys
// (model.layers.0.self_attn.q_proj.weight, ...). All weights are frozen (requires_grad = false);
// callers add trainable terms through IProjectionHook.

/// <summary>Root-mean-square layer norm, computed in float32 whatever the activation dtype.</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    public Parameter weight;
#pragma warning restore IDE1006
    private readonly double _eps;

    public RmsNorm(int dim, double eps) : base("norm")
    {
        _eps = eps;
        weight = nn.Parameter(torch.ones(dim), requires_grad: false);
        RegisterComponents();
    }

    /// <returns>The normed input in the weight's dtype (what the next projection takes).</returns>
    public override Tensor forward(Tensor x) => Forward(x, weight.dtype);

    /// <summary>The normed input in the weight's dtype, through <see cref="RmsNormKernel"/> when <paramref name="kernel"/> and it takes
    /// the input (float32 on the CPU).</summary>
    public Tensor Forward(Tensor x, bool kernel) =>
        kernel && x.dtype == weight.dtype && RmsNormKernel.Supports(x, weight) ? RmsNormKernel.Apply(x, weight, _eps) : Forward(x, weight.dtype);

    /// <returns>The normed input in <paramref name="dtype"/>.</returns>
    public Tensor Forward(Tensor x, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);                                  // [.., D]
        var variance = x32.mul(x32).mean(new long[] { -1 }, keepdim: true);   // [.., 1]
        var normed = x32.mul(torch.rsqrt(variance.add(Scalars.Of(_eps), Scalars.One))).to(dtype);
        return normed.mul(weight.to(dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Rotary position embedding in the "rotate_half" layout; inverse frequencies computed once.</summary>
internal sealed class RotaryEmbedding : nn.Module
{
    // [head_dim / 2] inverse frequencies, kept on the host in float32 (not a buffer: a module-wide move to bf16
    // must not round them); copied to the positions' device per forward.
    private readonly float[] _invFreq;

    public RotaryEmbedding(LlamaConfig config) : base("rotary_emb")
    {
        int half = config.HeadDim / 2;
        var inv = new float[half];
        for (int i = 0; i < half; i++)
        {
            double f = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.HeadDim);
            if (config.RopeScaling is { } s) f = ScaleLlama3(f, s);
            inv[i] = (float)f;
        }
        _invFreq = inv;
    }

    // Llama 3.1: long wavelengths are divided by `factor`, short ones kept, the band between interpolated.
    private static double ScaleLlama3(double freq, RopeScaling s)
    {
        double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        double highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        double wavelen = 2 * Math.PI / freq;
        if (wavelen < highFreqWavelen) return freq;
        if (wavelen > lowFreqWavelen) return freq / s.Factor;
        double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        return (1 - smooth) * freq / s.Factor + smooth * freq;
    }

    /// <param name="positions">[B, T] int64</param>
    /// <returns>cos, sin: [B, 1, T, head_dim] in <paramref name="dtype"/></returns>
    public (Tensor cos, Tensor sin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var inv = torch.tensor(_invFreq, dtype: ScalarType.Float32, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1).mul(inv);   // [B, T, hd/2]
        var emb = torch.cat(new[] { freqs, freqs }, -1).unsqueeze(1);          // [B, 1, T, hd]
        var cos = emb.cos().to(dtype);
        var sin = emb.sin().to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>x * cos + rotate_half(x) * sin for x: [B, heads, T, head_dim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = torch.NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = torch.cat(new[] { x2.neg(), x1 }, -1);
        return x.mul(cos).add(rotated.mul(sin), Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>Grouped-query self-attention with hooked q, k, v, o projections.</summary>
internal sealed class LlamaAttention : nn.Module
{
#pragma warning disable IDE1006
    public HookedLinear q_proj, k_proj, v_proj, o_proj;
#pragma warning restore IDE1006
    private readonly int _heads, _kvHeads, _headDim;

    public LlamaAttention(LlamaConfig c, int layer) : base("self_attn")
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim;
        q_proj = new HookedLinear(new(layer, ProjectionKind.Q, c.HiddenSize, c.AttentionDim), c.AttentionBias);
        k_proj = new HookedLinear(new(layer, ProjectionKind.K, c.HiddenSize, c.KvDim), c.AttentionBias);
        v_proj = new HookedLinear(new(layer, ProjectionKind.V, c.HiddenSize, c.KvDim), c.AttentionBias);
        o_proj = new HookedLinear(new(layer, ProjectionKind.O, c.AttentionDim, c.HiddenSize), false);
        RegisterComponents();
    }

    /// <param name="x">[B, T, D]</param>
    /// <param name="mask">null for plain causal attention, else bool [B, 1, T, T] (true = attend)</param>
    /// <param name="kernels">which code computes plain causal attention of narrow float32 heads on the CPU, and whether its rotary
    /// embedding goes to <see cref="RotaryKernel"/> (the same output; see <see cref="Runtime.ComputePlan.NarrowHeadKernel"/>); masks,
    /// other devices, dtypes and head widths use libtorch's (null: <see cref="LlmKernels.Default"/>)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, IProjectionHook? hook, LlmKernels? kernels = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var kn = kernels ?? LlmKernels.Default;
        var qx = q_proj.Forward(x, hook).view(b, t, _heads, _headDim);                                  // [B, T, H, hd]
        Tensor merged;
        if (mask is null && kn.Attention != AttentionKernel.Libtorch && NarrowHeadAttention.Supports(qx))
        {
            // Token-major layout throughout: no transposes, and grouped-query heads read their key-value head directly.
            var kx = k_proj.Forward(x, hook).view(b, t, _kvHeads, _headDim);                           // [B, T, KV, hd]
            Tensor q, k;
            var cosT = cos.squeeze(1); var sinT = sin.squeeze(1);                                       // [B, T, hd]
            if (kn.NormAndRotary && RotaryKernel.Supports(qx, cosT, sinT))
            {
                q = RotaryKernel.Apply(qx, cosT, sinT);                                                 // [B, T, H, hd]
                k = RotaryKernel.Apply(kx, cosT, sinT);                                                 // [B, T, KV, hd]
            }
            else
            {
                q = RotaryEmbedding.Apply(qx, cosT.unsqueeze(2), sinT.unsqueeze(2));                    // [B, T, H, hd]
                k = RotaryEmbedding.Apply(kx, cosT.unsqueeze(2), sinT.unsqueeze(2));                    // [B, T, KV, hd]
            }
            var v = v_proj.Forward(x, hook).view(b, t, _kvHeads, _headDim);                             // [B, T, KV, hd]
            merged = NarrowHeadAttention.Causal(q, k, v, kn.Attention == AttentionKernel.NarrowHead512 ? 512 : 256).view(b, t, _heads * _headDim);   // [B, T, H*hd]
        }
        else
        {
            var q = RotaryEmbedding.Apply(qx.transpose(1, 2), cos, sin);                               // [B, H, T, hd]
            var (k, v) = KeysValues(x, cos, sin, hook);                                                 // [B, H, T, hd] each
            var attn = mask is null
                ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true)
                : nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);                // [B, H, T, hd]
            merged = attn.transpose(1, 2).reshape(b, t, _heads * _headDim);                             // [B, T, H*hd]
        }
        return o_proj.Forward(merged, hook).MoveToOuterDisposeScope();                                  // [B, T, D]
    }

    /// <summary>Rotated keys and values of every token, repeated to the query heads (grouped-query attention): [B, H, T, hd] each.</summary>
    private (Tensor k, Tensor v) KeysValues(Tensor x, Tensor cos, Tensor sin, IProjectionHook? hook)
    {
        long b = x.shape[0], t = x.shape[1];
        var k = k_proj.Forward(x, hook).view(b, t, _kvHeads, _headDim).transpose(1, 2);  // [B, KV, T, hd]
        var v = v_proj.Forward(x, hook).view(b, t, _kvHeads, _headDim).transpose(1, 2);  // [B, KV, T, hd]
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (_kvHeads == _heads) return (k, v);
        int rep = _heads / _kvHeads;                        // query head h reads kv head h / rep
        return (k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1));
    }

    /// <summary>Attention output at one position per row only: keys and values from every token, the query from <paramref name="last"/>.</summary>
    /// <param name="x">[B, T, D]</param>
    /// <param name="last">[B] int64, the position whose output is needed (each row's last real token)</param>
    /// <param name="keys">null when every token is real, else bool [B, 1, 1, T] (true = real token)</param>
    /// <returns>[B, 1, D]</returns>
    public Tensor ForwardAt(Tensor x, Tensor cos, Tensor sin, Tensor last, Tensor? keys, IProjectionHook? hook)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0];
        var (k, v) = KeysValues(x, cos, sin, hook);                                       // [B, H, T, hd] each
        var xq = x.gather(1, last.view(b, 1, 1).expand(b, 1, x.shape[2]));                // [B, 1, D]
        var q = q_proj.Forward(xq, hook).view(b, 1, _heads, _headDim).transpose(1, 2);    // [B, H, 1, hd]
        var at = last.view(b, 1, 1, 1).expand(b, 1, 1, cos.shape[3]);
        q = RotaryEmbedding.Apply(q, cos.gather(2, at), sin.gather(2, at));               // cos, sin at the query's position
        // The last real token sees every real token (causality adds nothing), so only padded keys are masked.
        var attn = keys is null
            ? nn.functional.scaled_dot_product_attention(q, k, v)
            : nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: keys);      // [B, H, 1, hd]
        var merged = attn.transpose(1, 2).reshape(b, 1, _heads * _headDim);          // [B, 1, H*hd]
        return o_proj.Forward(merged, hook).MoveToOuterDisposeScope();                // [B, 1, D]
    }
}

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)).</summary>
internal sealed class LlamaMlp : nn.Module
{
#pragma warning disable IDE1006
    public HookedLinear gate_proj, up_proj, down_proj;
#pragma warning restore IDE1006

    public LlamaMlp(LlamaConfig c, int layer) : base("mlp")
    {
        gate_proj = new HookedLinear(new(layer, ProjectionKind.Gate, c.HiddenSize, c.IntermediateSize), false);
        up_proj = new HookedLinear(new(layer, ProjectionKind.Up, c.HiddenSize, c.IntermediateSize), false);
        down_proj = new HookedLinear(new(layer, ProjectionKind.Down, c.IntermediateSize, c.HiddenSize), false);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, IProjectionHook? hook)
    {
        using var scope = torch.NewDisposeScope();
        var h = nn.functional.silu(gate_proj.Forward(x, hook)).mul(up_proj.Forward(x, hook));  // [B, T, I]
        return down_proj.Forward(h, hook).MoveToOuterDisposeScope();                         // [B, T, D]
    }
}

/// <summary>Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(.)).</summary>
internal sealed class LlamaDecoderLayer : nn.Module
{
#pragma warning disable IDE1006
    public LlamaAttention self_attn;
    public LlamaMlp mlp;
    public RmsNorm input_layernorm, post_attention_layernorm;
#pragma warning restore IDE1006

    public LlamaDecoderLayer(LlamaConfig c, int layer) : base($"layer{layer}")
    {
        self_attn = new LlamaAttention(c, layer);
        mlp = new LlamaMlp(c, layer);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        RegisterComponents();
    }

    /// <param name="kernels">Cora's kernels to use (null: <see cref="LlmKernels.Default"/>)</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, IProjectionHook? hook, LlmKernels? kernels = null)
    {
        using var scope = torch.NewDisposeScope();
        var k = kernels ?? LlmKernels.Default;
        var h = x.add(self_attn.Forward(input_layernorm.Forward(x, k.NormAndRotary), cos, sin, mask, hook, k), Scalars.One);
        return h.add(mlp.Forward(post_attention_layernorm.Forward(h, k.NormAndRotary), hook), Scalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>The layer's output at one position per row, [B, 1, D] (see <see cref="LlamaAttention.ForwardAt"/>).</summary>
    public Tensor ForwardAt(Tensor x, Tensor cos, Tensor sin, Tensor last, Tensor? keys, IProjectionHook? hook, LlmKernels? kernels = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0];
        bool norms = (kernels ?? LlmKernels.Default).NormAndRotary;
        var xLast = x.gather(1, last.view(b, 1, 1).expand(b, 1, x.shape[2]));                               // [B, 1, D]
        var h = xLast.add(self_attn.ForwardAt(input_layernorm.Forward(x, norms), cos, sin, last, keys, hook), Scalars.One);   // [B, 1, D]
        return h.add(mlp.Forward(post_attention_layernorm.Forward(h, norms), hook), Scalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>Embedding, decoder stack and final norm (Hugging Face's <c>model.*</c> keys).</summary>
internal sealed class LlamaModel : nn.Module
{
#pragma warning disable IDE1006
    public Embedding embed_tokens;
    public ModuleList<LlamaDecoderLayer> layers;
    public RmsNorm norm;
#pragma warning restore IDE1006
    private readonly RotaryEmbedding _rotary;

    public LlamaModel(LlamaConfig c) : base("model")
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new LlamaDecoderLayer(c, i)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        _rotary = new RotaryEmbedding(c);
        RegisterComponents();
    }

    /// <summary>Hidden states before the final norm, [B, T, D].</summary>
    /// <param name="inputsEmbeds">[B, T, D] token embeddings (e.g. with inserted soft tokens)</param>
    /// <param name="attentionMask">[B, T], 1 for real tokens, 0 for padding (left or right); null = all real</param>
    /// <param name="last">null for every position; else [B] int64, each row's last real token: the final layer then computes
    /// only that position (its keys and values still come from every token) and the result is [B, 1, D]</param>
    /// <param name="kernels">Cora's kernels to use (null: <see cref="LlmKernels.Default"/>)</param>
    public Tensor Forward(Tensor inputsEmbeds, Tensor? attentionMask, IProjectionHook? hook, Tensor? last = null, LlmKernels? kernels = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = inputsEmbeds.shape[0], t = inputsEmbeds.shape[1];
        var device = inputsEmbeds.device;
        Tensor positions;
        Tensor? mask = null;
        if (attentionMask is null)
        {
            positions = Scalars.Arange(t, device).unsqueeze(0).expand(b, t);
        }
        else
        {
            var m = attentionMask.to(ScalarType.Int64, device);
            positions = m.cumsum(1).sub(Scalars.Of(1L)).clamp_min(Scalars.Of(0L));   // [B, T]
            // Right padding (every row a run of ones, then zeros) needs only the causal mask:
            // padded keys sit after every real query. Anything else gets an explicit mask.
            bool rightPadded = t < 2 || m.narrow(1, 1, t - 1).le(m.narrow(1, 0, t - 1)).all().item<bool>();
            if (!rightPadded)
            {
                var causal = torch.ones(t, t, dtype: ScalarType.Bool, device: device).tril();  // [T, T]
                var keys = m.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1);                      // [B, 1, 1, T]
                var diag = torch.eye(t, dtype: ScalarType.Bool, device: device);                // padded queries see themselves
                mask = causal.logical_and(keys).logical_or(diag);                               // [B, 1, T, T]
            }
        }
        // Projections compute in the weights' dtype; the residual stream is carried in fp32 when the weights are bf16/fp16
        // (each layer adds its output to it), so rounding does not accumulate over the layers.
        var computeDtype = embed_tokens.weight!.dtype;
        var (cos, sin) = _rotary.Tables(positions, computeDtype);
        var h = computeDtype is ScalarType.BFloat16 or ScalarType.Float16 ? inputsEmbeds.to(ScalarType.Float32) : inputsEmbeds;
        int n = layers.Count;
        for (int i = 0; i < n; i++)
        {
            if (last is not null && i == n - 1)
            {
                var keys = attentionMask?.to(ScalarType.Bool, device).view(b, 1, 1, t);              // [B, 1, 1, T]
                h = layers[i].ForwardAt(h, cos, sin, last, keys, hook, kernels);                       // [B, 1, D]
            }
            else h = layers[i].Forward(h, cos, sin, mask, hook, kernels);                                      // [B, T, D]
        }
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// LLaMA-family causal LM: <see cref="LlamaModel"/> plus a tied or untied output head.
/// Build on the CPU, load weights (<see cref="CheckpointLoader"/>), then move with <c>to(device)</c>.
/// </summary>
internal sealed class LlamaForCausalLM : nn.Module
{
#pragma warning disable IDE1006
    public LlamaModel model;
    public Linear? lm_head;
#pragma warning restore IDE1006
    public LlamaConfig Config { get; }

    public LlamaForCausalLM(LlamaConfig config) : base("LlamaForCausalLM")
    {
        Config = config.Validate();
        model = new LlamaModel(Config);
        if (!Config.TieWordEmbeddings) lm_head = nn.Linear(Config.HiddenSize, Config.VocabSize, hasBias: false);
        RegisterComponents();
        foreach (var p in parameters()) p.requires_grad = false;
    }

    /// <summary>A model with N(0, 0.02) weights (Hugging Face's initializer_range), for tests and benchmarks.</summary>
    public static LlamaForCausalLM CreateRandom(LlamaConfig config, long seed)
    {
        var m = new LlamaForCausalLM(config);
        using var _ = torch.no_grad();
        var gen = new torch.Generator((ulong)seed);
        foreach (var (name, p) in m.named_parameters())
        {
            if (name.EndsWith("norm.weight")) p.fill_(1.0f);
            else p.normal_(0, 0.02, gen);               // weights and (Qwen2) biases alike
        }
        return m;
    }

    /// <summary>The output head's weight, [V, D] (the embedding when tied).</summary>
    public Tensor HeadWeight => lm_head?.weight ?? model.embed_tokens.weight!;

    /// <summary>Token embeddings, [B, T, D].</summary>
    public Tensor Embed(Tensor inputIds) => model.embed_tokens.call(inputIds);

    /// <summary>Logits at every position, [B, T, V] (for tests and generation).</summary>
    public Tensor Logits(Tensor inputIds, Tensor? attentionMask = null, IProjectionHook? hook = null)
    {
        using var scope = torch.NewDisposeScope();
        return Logits(Embed(inputIds), attentionMask, hook, fromEmbeddings: true).MoveToOuterDisposeScope();
    }

    /// <summary>Logits at every position from input embeddings, [B, T, V] fp32 (the paper's way of scoring; see <see cref="LastTokenLogits"/>).</summary>
    /// <param name="kernels">Cora's kernels to use (null: <see cref="LlmKernels.Default"/>)</param>
#pragma warning disable IDE0060 // the flag only tells the overloads apart
    public Tensor Logits(Tensor inputsEmbeds, Tensor? attentionMask, IProjectionHook? hook, bool fromEmbeddings, LlmKernels? kernels = null)
#pragma warning restore IDE0060
    {
        using var scope = torch.NewDisposeScope();
        var h = model.Forward(inputsEmbeds, attentionMask, hook, null, kernels);
        return nn.functional.linear(model.norm.Forward(h, (kernels ?? LlmKernels.Default).NormAndRotary), HeadWeight).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Logits at the last real token of each row only, optionally restricted to some vocabulary ids,
    /// so the full vocabulary projection is never computed when it is not needed.
    /// </summary>
    /// <param name="inputsEmbeds">[B, T, D]</param>
    /// <param name="attentionMask">[B, T] (1 = real token) or null</param>
    /// <param name="vocabIds">ids to score (e.g. "Yes", "No"), or null for the whole vocabulary</param>
    /// <param name="finalLayerAtLastToken">the final decoder layer computes only the last token's query, attention output and
    /// MLP (keys and values from every token): the same logits, one layer's position-wise work saved</param>
    /// <param name="kernels">Cora's kernels to use (null: <see cref="LlmKernels.Default"/>)</param>
    /// <returns>[B, K] with K = vocabIds.Length or vocab size</returns>
    public Tensor LastTokenLogits(Tensor inputsEmbeds, Tensor? attentionMask, IProjectionHook? hook, long[]? vocabIds = null, bool finalLayerAtLastToken = true,
        LlmKernels? kernels = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = inputsEmbeds.shape[0], t = inputsEmbeds.shape[1];
        var device = inputsEmbeds.device;
        Tensor last;
        if (attentionMask is null) last = torch.full(b, Scalars.Of(t - 1), dtype: ScalarType.Int64, device: device);
        else
        {
            var m = attentionMask.to(ScalarType.Int64, device);
            last = m.mul(Scalars.Arange(t, device)).argmax(1);                      // [B] last real index
        }
        Tensor hLast;
        if (finalLayerAtLastToken) hLast = model.Forward(inputsEmbeds, attentionMask, hook, last, kernels).squeeze(1);   // [B, D]
        else
        {
            var h = model.Forward(inputsEmbeds, attentionMask, hook, null, kernels);   // [B, T, D]
            hLast = h.gather(1, last.view(b, 1, 1).expand(b, 1, h.shape[2])).squeeze(1);   // [B, D]
        }
        // The final norm and the (few) head rows run in fp32 whatever the weights' dtype: one rounding fewer on the score.
        hLast = model.norm.Forward(hLast, ScalarType.Float32);                             // [B, D] fp32
        var w = HeadWeight;
        if (vocabIds is not null) w = w.index_select(0, torch.tensor(vocabIds, device: w.device));  // [K, D]
        return nn.functional.linear(hLast, w.to(ScalarType.Float32)).MoveToOuterDisposeScope();   // [B, K] fp32
    }

    /// <summary>Sites of every projection of the given kinds, in layer order.</summary>
    public IReadOnlyList<ProjectionSite> Sites(IEnumerable<ProjectionKind> kinds)
    {
        var set = kinds.ToHashSet();
        var list = new List<ProjectionSite>();
        foreach (var layer in model.layers)
            foreach (var p in new[] { layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
                                      layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj })
                if (set.Contains(p.Site.Kind)) list.Add(p.Site);
        return list;
    }

    /// <summary>Greedy continuation (no KV cache; for tests and demos).</summary>
    public long[] GenerateGreedy(long[] promptIds, int steps)
    {
        using var _ = torch.no_grad();
        var ids = promptIds.ToList();
        for (int s = 0; s < steps; s++)
        {
            using var scope = torch.NewDisposeScope();
            var input = torch.tensor(ids.ToArray(), device: HeadWeight.device).unsqueeze(0);
            var logits = LastTokenLogits(Embed(input), null, null);
            ids.Add(logits.argmax(1).item<long>());
        }
        return ids.Skip(promptIds.Length).ToArray();
    }
}
