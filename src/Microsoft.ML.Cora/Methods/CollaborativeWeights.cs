using Microsoft.ML.Cora.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>
/// CoRA's collaborative weights: for every targeted projection a learned P: r -> d_out (zero-initialised, no
/// bias). With a sample's A_b from the query generator, the projection becomes
/// <c>y = W x + scale * P(dropout(x) A_b)</c>; A_b is shared by all targeted projections of the sample.
/// </summary>
internal sealed class CollaborativeWeights : nn.Module
{
#pragma warning disable IDE1006
    public LinearMap p;
#pragma warning restore IDE1006
    public double Scale { get; }
    public double Dropout { get; }
    /// <summary>Dropout masks from <see cref="FastDropout"/> (see <see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public bool FastDropout { get; set; } = true;

    public CollaborativeWeights(IReadOnlyList<ProjectionSite> sites, int dModel, int rank, double alpha, double dropout) : base("collaborative_weights")
    {
        Scale = alpha / rank; Dropout = dropout;
        p = new LinearMap("p");
        foreach (var s in sites)
        {
            if (s.InFeatures != dModel)
                throw new ArgumentException($"CoRA shares one A of shape [d_model={dModel}, r] across projections, but {s.Name} takes {s.InFeatures} inputs. Target q, k, v, o, gate or up (not down).");
            var lin = nn.Linear(rank, s.OutFeatures, hasBias: false);
            using (torch.no_grad()) lin.weight!.zero_();
            p.Add(Key(s), lin);
        }
        RegisterComponents();
    }

    internal static string Key(ProjectionSite s) => s.Name.Replace('.', '_');

    /// <summary>A hook for one batch: <paramref name="a"/> is [B, d_model, r].</summary>
    public IProjectionHook Bind(Tensor a) => new Hook(this, a);

    private sealed class Hook : IProjectionHook
    {
        private readonly CollaborativeWeights _w; private readonly Tensor _a;
        // q, k and v (gate and up) receive the same input object within a layer: its product with A_b is computed once
        // when no dropout mask separates them (exact; Reference.PaperForward computes it per projection, as the paper's code does).
        // The product lives in the caller's dispose scope (the layer's forward).
        private Tensor? _lastInput, _lastProduct;
        public Hook(CollaborativeWeights w, Tensor a) { _w = w; _a = a; }

        public IProjectionHook Rows(Tensor rows) => new Hook(_w, _a.index_select(0, rows));

        public Tensor? Delta(ProjectionSite site, Tensor x)
        {
            if (!_w.p.TryGetValue(Key(site), out var lin)) return null;
            bool dropout = _w.Dropout > 0 && _w.training;
            if (dropout) return LowRank.PerSample(x, _a, lin, _w.Scale, _w.Dropout, _w.training, _w.FastDropout);
            if (!ReferenceEquals(x, _lastInput) || _lastProduct is null || _lastProduct.IsInvalid)
            {
                _lastProduct = LowRank.InputProduct(x, _a, 0, false);                // [B, T, r]
                _lastInput = x;
            }
            return LowRank.Output(_lastProduct, lin, _w.Scale, x.dtype);
        }
    }
}
