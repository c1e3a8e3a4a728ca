using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora.Methods;

/// <summary>Options of the collaborative query generator (defaults: CoRA's public code, in <see cref="CoraDefaults"/>).</summary>
public sealed record QueryGeneratorOptions
{
    /// <summary>CoRA's full-size generator (the default): 4 queries, 8 layers, 512 wide, 8 heads, FFN 3072 (about 42M
    /// parameters with a 64-wide LLM and r = 16; training keeps 4 fp32 copies: about 0.7 GB).</summary>
    public static QueryGeneratorOptions Paper => new();   // a new instance each time: changing one never changes the preset
    /// <summary>A small generator for first runs and CPUs: 2 layers, 256 wide, 4 heads, FFN 1024 (about 2.5M parameters);
    /// trains several times faster. Switch to <see cref="Paper"/> for the paper's setting.</summary>
    public static QueryGeneratorOptions Compact => new() { NumLayers = 2, Hidden = 256, Heads = 4, FeedForward = 1024 };

    /// <summary>Learnable queries (4). More queries average more views of the CF token; 4 is CoRA's choice.</summary>
    [Option("--generator-queries", "Learned queries of the Q-Former.", Min = 1, Max = 256)]
    public int NumQueries { get; set; } = CoraDefaults.GeneratorQueries;
    /// <summary>Q-Former layers (8). Fewer layers train faster; the CF token is a single vector, so depth matters little.</summary>
    [Option("--generator-layers", "Q-Former layers.", Min = 1, Max = 48)]
    public int NumLayers { get; set; } = CoraDefaults.GeneratorLayers;
    /// <summary>Q-Former width (512). Must be divisible by <see cref="Heads"/>.</summary>
    [Option("--generator-hidden", "Q-Former width; must be divisible by the heads.", Min = 1, Max = 8192)]
    public int Hidden { get; set; } = CoraDefaults.GeneratorHidden;
    /// <summary>Attention heads (8).</summary>
    [Option("--generator-heads", "Q-Former attention heads.", Min = 1, Max = 128)]
    public int Heads { get; set; } = CoraDefaults.GeneratorHeads;
    /// <summary>Feed-forward width (3072, BERT's).</summary>
    [Option("--generator-ffn", "Q-Former feed-forward width.", Min = 1, Max = 65536)]
    public int FeedForward { get; set; } = CoraDefaults.GeneratorFeedForward;
    /// <summary>Dropout inside the Q-Former (0.1).</summary>
    [Option("--generator-dropout", "Dropout inside the Q-Former.", Min = 0, Max = 0.99)]
    public double Dropout { get; set; } = CoraDefaults.GeneratorDropout;
    /// <summary>The RMS at which the generator reads each half (user, item) of the CF token; 0 = the raw token, as CoRA's public code
    /// reads it; null = the CF model's own default (<see cref="CfTokenRmsFor"/>: MF 0, LightGCN and SASRec 0.4; the model stores the
    /// value it resolved). Before training, each half's root mean square over a sample of the training rows sets a fixed scale, stored
    /// with the model: a fixed diagonal map before the generator's first layers, which changes how training starts, not what the
    /// generator can express. How to choose: scale (0.4) where the CF model leaves its two halves at very different scales (SASRec's
    /// items sit near RMS 0.007 against its users' 1.7: read raw, the generator takes the small half for noise and gives every sample
    /// one A; LightGCN also reads better scaled); with MF the raw token reads better (0.002 AUC over four seeds at 16,000 rows, 0.004
    /// AUC and 0.008 UAUC over three under <c>--preset cpu-2h</c>; docs/results.md). Values well above 1 start the generator's layer
    /// norms and attention saturated.</summary>
    [Option("--cf-token-rms", "RMS at which the generator reads each half (user, item) of the CF token, scaled once from the training rows; 0 = the raw token, as CoRA's code (default: the CF model's own).", Min = 0, Max = 1000)]
    public double? CfTokenRms { get; set; }

    /// <summary><see cref="CfTokenRms"/>, or the default of the CF model named <paramref name="cfKind"/> (<see cref="ICollaborativeModel.Kind"/>) when it is null.</summary>
    public double CfTokenRmsFor(string cfKind) => CfTokenRms ?? CollaborativeModels.Named(cfKind).DefaultCfTokenRms;

    /// <summary>Every out-of-range value, by option name (bounds keep a model file from asking for absurd allocations).</summary>
    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        var e = OptionChecks.Declared(this, prefix);
        if (Heads >= 1 && Hidden >= 1 && Hidden % Heads != 0)
            e = e.Append(new OptionError(prefix + nameof(Hidden), $"{Hidden} must be divisible by {prefix}{nameof(Heads)} ({Heads})."));
        return e;
    }
}

/// <summary>The generator's linear layers with their matrix products in a narrower dtype (see <see cref="QueryGenerator.MatmulDtype"/>):
/// input, weight and bias rounded to that dtype, the product accumulated in float32 by libtorch and rounded to the dtype, the result
/// back in the input's dtype. Gradients flow through the casts to the float32 weights (the optimiser's master copy).</summary>
internal static class GeneratorMatmul
{
    /// <param name="dtype">null or the input's own dtype: the plain layer</param>
    public static Tensor Linear(Linear layer, Tensor x, ScalarType? dtype)
    {
        if (dtype is not { } d || d == x.dtype) return layer.call(x);
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.linear(x.to(d), layer.weight!.to(d), layer.bias?.to(d));
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head attention (BERT style: q from the queries, k/v from a source of any width).</summary>
internal sealed class BertAttention : nn.Module
{
#pragma warning disable IDE1006
    public Linear query, key, value, output;
    public LayerNorm layer_norm;
#pragma warning restore IDE1006
    private readonly int _heads;
    private readonly double _dropout;
    /// <summary>Dropout masks from <see cref="Llm.Kernels.FastDropout"/> (see <see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public bool FastDropout { get; set; } = true;
    /// <summary>dtype of the linear layers' products (see <see cref="QueryGenerator.MatmulDtype"/>).</summary>
    public ScalarType? MatmulDtype { get; set; }

    public BertAttention(string name, int hidden, int sourceWidth, int heads, double dropout) : base(name)
    {
        if (hidden % heads != 0) throw new ArgumentException($"Q-Former hidden ({hidden}) must be divisible by heads ({heads}).");
        _heads = heads; _dropout = dropout;
        query = nn.Linear(hidden, hidden); key = nn.Linear(sourceWidth, hidden); value = nn.Linear(sourceWidth, hidden);
        output = nn.Linear(hidden, hidden);
        layer_norm = nn.LayerNorm(hidden, 1e-12);
        RegisterComponents();
    }

    /// <summary>The heads' attention outputs, merged: [B, Q, H] (before the output projection).</summary>
    internal Tensor Attend(Tensor x, Tensor source)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], q = x.shape[1], s = source.shape[1], h = x.shape[2], hd = h / _heads;
        Tensor merged;
        if (s == 1)
        {
            // softmax over one key is exactly 1: every query reads the source's value (the query and key projections are skipped;
            // Reference.PaperForward computes the attention in full). Attention dropout drops that weight
            // (keeps it scaled by 1 / (1 - p)) independently per batch row, head and query, as SDPA's dropout would.
            var v = GeneratorMatmul.Linear(value, source, MatmulDtype);                       // [B, 1, H]
            if (training && _dropout > 0)
            {
                var keep = Llm.Kernels.FastDropout.Apply(torch.ones(b, q, _heads, 1, dtype: v.dtype, device: v.device), _dropout, true, FastDropout);  // [B, Q, h, 1]
                merged = keep.mul(v.view(b, 1, _heads, hd)).reshape(b, q, h);                  // [B, Q, H]
            }
            else merged = v.expand(b, q, h);                                                   // [B, Q, H]
        }
        else
        {
            var qh = GeneratorMatmul.Linear(query, x, MatmulDtype).view(b, q, _heads, hd).transpose(1, 2);        // [B, h, Q, hd]
            var kh = GeneratorMatmul.Linear(key, source, MatmulDtype).view(b, s, _heads, hd).transpose(1, 2);     // [B, h, S, hd]
            var vh = GeneratorMatmul.Linear(value, source, MatmulDtype).view(b, s, _heads, hd).transpose(1, 2);   // [B, h, S, hd]
            var att = nn.functional.scaled_dot_product_attention(qh, kh, vh, p: training ? _dropout : 0.0);
            merged = att.transpose(1, 2).reshape(b, q, h);
        }
        return merged.MoveToOuterDisposeScope();
    }

    /// <param name="x">[B, Q, H]</param><param name="source">[B, S, W]</param>
    /// <returns>LayerNorm(x + attention) [B, Q, H] (post-norm, as BERT)</returns>
    public Tensor Forward(Tensor x, Tensor source)
    {
        using var scope = torch.NewDisposeScope();
        var merged = Attend(x, source);                                           // [B, Q, H]
        var o = Llm.Kernels.FastDropout.Apply(GeneratorMatmul.Linear(output, merged, MatmulDtype), _dropout, training, FastDropout);
        return layer_norm.call(x.add(o, Runtime.Scalars.One)).MoveToOuterDisposeScope();
    }
}

/// <summary>One Q-Former layer: self-attention over the queries, cross-attention to the CF token, FFN.</summary>
internal sealed class QFormerLayer : nn.Module
{
#pragma warning disable IDE1006
    public BertAttention self_attention, cross_attention;
    public Linear intermediate, output;
    public LayerNorm output_norm;
#pragma warning restore IDE1006
    private readonly double _dropout;
    /// <summary>Dropout masks from <see cref="Llm.Kernels.FastDropout"/> (see <see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public bool FastDropout { get; set; } = true;
    /// <summary>dtype of the linear layers' products (see <see cref="QueryGenerator.MatmulDtype"/>).</summary>
    public ScalarType? MatmulDtype { get; set; }

    public QFormerLayer(int index, QueryGeneratorOptions o, int sourceWidth) : base($"layer{index}")
    {
        _dropout = o.Dropout;
        self_attention = new BertAttention("self_attention", o.Hidden, o.Hidden, o.Heads, o.Dropout);
        cross_attention = new BertAttention("cross_attention", o.Hidden, sourceWidth, o.Heads, o.Dropout);
        intermediate = nn.Linear(o.Hidden, o.FeedForward);
        output = nn.Linear(o.FeedForward, o.Hidden);
        output_norm = nn.LayerNorm(o.Hidden, 1e-12);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor source)
    {
        using var scope = torch.NewDisposeScope();
        var h = self_attention.Forward(x, x);
        h = cross_attention.Forward(h, source);
        var f = Llm.Kernels.FastDropout.Apply(GeneratorMatmul.Linear(output, nn.functional.gelu(GeneratorMatmul.Linear(intermediate, h, MatmulDtype)), MatmulDtype), _dropout, training, FastDropout);
        return output_norm.call(h.add(f, Runtime.Scalars.One)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CoRA's collaborative query generator: learnable queries attend (through a BERT-style Q-Former) to the CF
/// token concat(u, i); a linear head maps each query to d_model * r values, the queries are averaged, the
/// vector is L2-normalised and reshaped into one A_b of shape [d_model, r] per sample.
/// </summary>
internal sealed class QueryGenerator : nn.Module
{
#pragma warning disable IDE1006
    public Parameter query_tokens;
    public LayerNorm query_norm;
    public ModuleList<QFormerLayer> layers;
    public Linear head;
    /// <summary>Per-column scale of the CF token, [cfWidth] (not trained): ones until <see cref="Calibrate"/> sets each half to <see cref="QueryGeneratorOptions.CfTokenRms"/>.</summary>
    public Tensor token_scale;
#pragma warning restore IDE1006
    private readonly int _dModel, _rank;
    private readonly double _dropout;

    /// <summary>Dropout masks from <see cref="Llm.Kernels.FastDropout"/> (see <see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public bool FastDropout { get; set; } = true;

    /// <summary>dtype of the Q-Former layers' matrix products, null (the default) for the weights' own float32. BFloat16 runs them
    /// faster on CPUs whose bf16 matrix units are fast (about 2.4x on AMD Zen 4; half as fast as fp32 on some Xeons that report
    /// avx512_bf16 too, which is why <c>auto</c> times both) and on GPUs: inputs, weights and outputs are rounded to
    /// 8 significant bits and products accumulate in float32; layer norms, softmax, dropout, the mean over queries, the d·r head (once
    /// per sample) and the normalisation of A stay float32, as do the weights the optimiser updates. Not exact: the scores move by
    /// about the rounding (docs/performance.md gives the AUC measured both ways).</summary>
    public ScalarType? MatmulDtype
    {
        get => _matmulDtype;
        set
        {
            _matmulDtype = value;
            foreach (var layer in layers) layer.MatmulDtype = layer.self_attention.MatmulDtype = layer.cross_attention.MatmulDtype = value;
        }
    }
    private ScalarType? _matmulDtype;

    /// <summary>Applies a compute plan's generator switch (<see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public void Apply(Runtime.ComputePlan plan)
    {
        FastDropout = plan.FastDropout;
        foreach (var layer in layers)
            layer.FastDropout = layer.self_attention.FastDropout = layer.cross_attention.FastDropout = plan.FastDropout;
    }

    /// <param name="o">Size: layers, hidden width, heads, queries, dropout.</param>
    /// <param name="cfWidth">Width of the CF token (2 x CF embedding size).</param>
    /// <param name="dModel">The LLM's hidden size.</param>
    /// <param name="rank">r of the collaborative weights.</param>
    /// <param name="seed">Seeds the initial weights.</param>
    /// <summary>The options this generator was built with.</summary>
    public QueryGeneratorOptions Options { get; }

    public QueryGenerator(QueryGeneratorOptions o, int cfWidth, int dModel, int rank, long seed) : base("query_generator")
    {
        _dModel = dModel; _rank = rank; _dropout = o.Dropout; Options = o;
        torch.manual_seed(seed);
        query_tokens = nn.Parameter(torch.empty(1, o.NumQueries, o.Hidden));
        query_norm = nn.LayerNorm(o.Hidden, 1e-12);
        layers = new ModuleList<QFormerLayer>(Enumerable.Range(0, o.NumLayers).Select(i => new QFormerLayer(i, o, cfWidth)).ToArray());
        head = nn.Linear(o.Hidden, (long)dModel * rank);
        token_scale = torch.ones(cfWidth);
        RegisterComponents();
        using var _ = torch.no_grad();
        var g = new torch.Generator((ulong)seed);
        query_tokens.normal_(0, 0.02, g);
        foreach (var (name, p) in named_parameters())          // BERT init: N(0, 0.02) weights, zero biases, unit norms
        {
            if (name == "query_tokens") continue;
            if (name.EndsWith("norm.weight") || name.Contains("layer_norm.weight")) p.fill_(1);
            else if (name.EndsWith(".bias")) p.zero_();
            else p.normal_(0, 0.02, g);
        }
    }

    /// <summary>Sets <see cref="token_scale"/> so that the user half and the item half of <paramref name="cfTokens"/> each have RMS
    /// <paramref name="rms"/> (a half that is all zeros keeps scale 1).</summary>
    /// <param name="cfTokens">[N, cfWidth] = concat(user, item) of training rows</param>
    /// <param name="rms">The target root mean square of each half (<see cref="QueryGeneratorOptions.CfTokenRms"/>).</param>
    public void Calibrate(Tensor cfTokens, double rms)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        long w = token_scale.shape[0], half = w / 2;
        var x = cfTokens.to(ScalarType.Float32);
        var scale = new float[w];
        foreach (var (start, len) in new[] { (0L, half), (half, w - half) })
        {
            var part = x.narrow(1, start, len);
            double now = Math.Sqrt(part.mul(part).mean().item<float>());
            float s = now > 1e-12 && double.IsFinite(now) ? (float)(rms / now) : 1f;
            for (long j = start; j < start + len; j++) scale[j] = s;
        }
        token_scale.copy_(torch.tensor(scale, device: token_scale.device));
    }

    /// <param name="cfToken">[B, cfWidth] = concat(user, item)</param>
    /// <returns>A: [B, d_model, r], each sample's A with unit Frobenius norm</returns>
    public Tensor Forward(Tensor cfToken)
    {
        using var scope = torch.NewDisposeScope();
        long b = cfToken.shape[0];
        var source = cfToken.mul(token_scale).unsqueeze(1);                           // [B, 1, W]
        var q = query_norm.call(query_tokens.expand(b, -1, -1));                       // [B, Q, H]
        q = Llm.Kernels.FastDropout.Apply(q, _dropout, training, FastDropout);
        foreach (var layer in layers) q = layer.Forward(q, source);
        // mean_q(head(q)) = head(mean_q(q)) exactly (the head is linear): the d*r-wide head runs once per sample, not per query
        // (Reference.PaperForward runs it per query, as the paper's code does). The head stays float32 whatever MatmulDtype says:
        // it runs once per sample, and A_b is what the LLM reads.
        var v = head.call(q.mean(new long[] { 1 }));                                  // [B, d*r]
        v = nn.functional.normalize(v, p: 2, dim: 1);
        return v.view(b, _dModel, _rank).MoveToOuterDisposeScope();                    // [B, d, r]
    }
}
