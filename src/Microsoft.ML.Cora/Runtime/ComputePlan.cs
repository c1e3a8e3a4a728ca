using System.Diagnostics;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// How a <see cref="CoraModel"/> computes: the choices of kernels, streams, batching and caching that change the time a
/// computation takes but not its result. <see cref="Fast"/> (the default) takes every one where it applies; <see cref="Plain"/>
/// takes none (libtorch's own operations, one stream, no caches). Every plan gives the same scores (logits within 1e-5; tests check
/// it). The paper's way of computing CoRA as a whole (left padding, logits over the whole vocabulary, the generator's head on every
/// query, ...) is not a plan but a separate reference implementation, <c>Reference.PaperForward</c>, run under <see cref="Plain"/>.
/// </summary>
public sealed record ComputePlan
{
    /// <summary>Every saving on (the default).</summary>
    public static ComputePlan Fast { get; } = new();

    /// <summary>Every choice off: libtorch's own operations and sampler, prompts re-tokenised, rows in their order, one stream.</summary>
    public static ComputePlan Plain { get; } = new()
    {
        CachePrompts = false, BucketByLength = false, InferenceMode = false, LengthGroups = false, GeneratorChunks = false,
        NarrowHeadKernel = false, FastDropout = false, ScoringStreams = false, NormAndRotaryKernels = false,
    };

    /// <summary>The names of the on/off savings (the bool properties), for <see cref="Without"/> and <c>cora bench --baseline</c>.</summary>
    public static IReadOnlyList<string> SwitchNames { get; } = typeof(ComputePlan).GetProperties()
        .Where(p => p.PropertyType == typeof(bool) && p.CanWrite).Select(p => p.Name).ToArray();

    /// <summary>This plan with one saving turned off (measures that saving alone: <c>cora bench --baseline NAME</c>).</summary>
    /// <param name="switchName">one of <see cref="SwitchNames"/> (case-insensitive)</param>
    public ComputePlan Without(string switchName)
    {
        var name = SwitchNames.FirstOrDefault(n => string.Equals(n, switchName, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"'{switchName}' is not a saving of the compute plan. Use one of: {string.Join(", ", SwitchNames)}.", nameof(switchName));
        var copy = this with { };
        typeof(ComputePlan).GetProperty(name)!.SetValue(copy, false);
        return copy;
    }

    /// <summary>Prompts tokenised once per row and kept as long as the row.</summary>
    public bool CachePrompts { get; init; } = true;
    /// <summary>Scoring batches rows of similar prompt length (less padding); scores are returned in the input order.</summary>
    public bool BucketByLength { get; init; } = true;
    /// <summary>Within a batch, rows of similar prompt length run through the LLM together, each group padded only to its own
    /// longest prompt (attention costs grow with the square of the padded length). The batch, its loss and its gradient are the
    /// same (the loss is a mean over all rows); only padding is saved. On the CPU only: on a GPU a small LLM's
    /// step is bound by kernel launches, not FLOPs, and each group is another pass of them (stories260K, batch 16: 1,082 operations
    /// and 2,110 backward nodes a step in groups, 553 and 1,369 without; counted with tools/libtorch-calls.sh).</summary>
    public bool LengthGroups { get; init; } = true;
    /// <summary>Rows per length group (at least); smaller groups save more padding but use the matrix units less.</summary>
    public int LengthGroupRows { get; init; } = 4;
    /// <summary>Scoring runs the CF lookup and query generator over <see cref="GeneratorChunkRows"/> rows at once and the LLM over
    /// batches of the scoring batch size: the generator's small matrices (a few query tokens per row) use the matrix units better in
    /// wide batches, the LLM's activations stay in cache in narrow ones.</summary>
    public bool GeneratorChunks { get; init; } = true;
    /// <summary>Rows the generator sees at once when scoring (rounded down to whole scoring batches, at least one).</summary>
    public int GeneratorChunkRows { get; init; } = 128;
    /// <summary>Causal attention of narrow float32 heads on the CPU through <see cref="Llm.Kernels.NarrowHeadAttention"/> (one fused SIMD pass
    /// per row and key-value head, forward and backward) instead of libtorch's scaled-dot-product attention, whose CPU kernel is
    /// built for wide heads; other devices, dtypes and head widths use libtorch anyway.
    /// When on, the kernel is used where it measured faster than libtorch's attention on this CPU for the LLM's heads
    /// (<see cref="CpuChoices.AttentionKernel"/>, printed by <c>cora doctor</c>).</summary>
    public bool NarrowHeadKernel { get; init; } = true;
    /// <summary>The LLM's RMS norms, and with <see cref="NarrowHeadKernel"/> its rotary embeddings, in float32 on the CPU through
    /// <see cref="Llm.Kernels.RmsNormKernel"/> and <see cref="Llm.Kernels.RotaryKernel"/> (one SIMD pass each forward and backward)
    /// instead of libtorch's chains of small operations (five forward and about ten backward for a norm, seven each way for a
    /// rotation), each a pass over the activations. The same numbers up to float32 rounding; other devices and dtypes use libtorch.</summary>
    public bool NormAndRotaryKernels { get; init; } = true;
    /// <summary>In training, the dropout masks of the low-rank inputs (one per projection and step, each the size of the activations)
    /// and of the query generator come from <see cref="Llm.Kernels.FastDropout"/>'s hashed counter instead of libtorch's CPU Bernoulli sampler
    /// (the generator's attention-weight dropout among its queries stays inside libtorch's attention): the same distribution (keep
    /// with probability 1 - p, scale by 1 / (1 - p)), reproducible under the trainer's seeds, another random stream. Scoring has no
    /// dropout, so scores are unchanged; other devices and dtypes use libtorch anyway.</summary>
    public bool FastDropout { get; init; } = true;
    /// <summary>On a CPU with several cores, scoring runs its chunks of rows as parallel streams, one per libtorch thread, each on
    /// its own thread with one libtorch thread, instead of one stream whose every operation is split across the cores: a small LLM's
    /// many small operations keep cores waiting for each other more than they compute. Each chunk is the same computation on one
    /// libtorch thread (scores agree with one stream within float rounding; tested); then every chunk runs on one libtorch thread,
    /// a lone one too, so that scores do not depend on how rows are split between calls or shards. Used where it measured faster on this CPU for the LLM's width
    /// (<see cref="CpuChoices.ScoringStreams"/>), with at most <see cref="CpuChoices.MaxScoringStreams"/> streams.</summary>
    public bool ScoringStreams { get; init; } = true;
    /// <summary>Scoring under libtorch's inference mode (no autograd bookkeeping at all) instead of no_grad.</summary>
    public bool InferenceMode { get; init; } = true;
    /// <summary>Training's AdamW keeps each parameter group in one buffer and updates it as one tensor (see
    /// <see cref="Training.AdamW.SingleBuffer"/>): null (both plans) = wherever its fused per-parameter CPU pass does not apply (CUDA,
    /// dtypes other than float32), where it saves about 2,200 libtorch operations (each a kernel launch on a GPU) a step of CoRA's
    /// paper-size generator; true or false force it. The same updates either way, up to float32 rounding.</summary>
    public bool? SingleBufferOptimizer { get; init; }
}
