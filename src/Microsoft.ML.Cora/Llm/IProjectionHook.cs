using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// Adds a term to the output of a frozen projection: <c>y = W x + b + Delta(site, x)</c>.
/// Implementations carry their own (possibly per-sample) state, e.g. CoRA's collaborative weights
/// <c>scale * P(dropout(x) @ A_b)</c> or a plain LoRA. Returning null leaves the projection unchanged.
/// </summary>
internal interface IProjectionHook
{
    /// <param name="site">Which projection is being computed.</param>
    /// <param name="x">Its input, [batch, tokens, in].</param>
    /// <returns>[batch, tokens, out] or null.</returns>
    Tensor? Delta(ProjectionSite site, Tensor x);

    /// <summary>The same hook for a subset of the batch's rows (per-sample hooks select their state; shared ones return themselves).</summary>
    /// <param name="rows">int64 row indices into the batch</param>
    IProjectionHook Rows(Tensor rows) => this;
}
