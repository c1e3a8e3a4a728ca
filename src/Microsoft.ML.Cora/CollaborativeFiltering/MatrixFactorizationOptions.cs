using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>Options of the CF stage: MF, LightGCN or SASRec (CoLLM/CoRA's values, in <see cref="CoraDefaults"/>). The size, learning
/// rate and weight decay left null take the chosen model's own default (<see cref="EmbeddingDimFor"/> and the two after it).</summary>
public sealed record MatrixFactorizationOptions
{
    /// <summary>Embedding size of users and items; null = the model's default: MF and LightGCN 256 (CoRA's), SASRec 64 (CoLLM's).
    /// The concat [u; i] (2x) feeds the query generator.</summary>
    [Option("--mf-dim", "CF embedding size (default: the CF model's own).", Min = 1, Max = 8192)]
    public int? EmbeddingDim { get; set; }
    /// <summary>Adam learning rate; null = the model's default: MF and LightGCN 1e-3, SASRec 1e-2. Lower it if validation AUC oscillates.</summary>
    [Option("--mf-lr", "CF stage's Adam learning rate (default: the CF model's own).", Min = 0, MinExclusive = true, Max = 10)]
    public double? LearningRate { get; set; }
    /// <summary>Adam weight decay (L2 on every weight); null = the model's default: MF and LightGCN 1e-4, SASRec 1e-2. The main guard
    /// against over-fitting: raise it when the training loss keeps falling while validation AUC stalls after a few epochs.</summary>
    [Option("--mf-wd", "CF stage's weight decay, L2 (default: the CF model's own); raise it when validation AUC stalls while the loss falls.", Min = 0, Max = 10)]
    public double? WeightDecay { get; set; }
    /// <summary>Rows per step (2048).</summary>
    [Option("--mf-batch-size", "Rows per CF training step.", Min = 1, Max = 1 << 24)]
    public int BatchSize { get; set; } = CoraDefaults.MfBatchSize;
    /// <summary>Upper bound on epochs (200); early stopping usually ends sooner.</summary>
    [Option("--mf-epochs", "Maximum CF epochs (early stopping on validation AUC).", Min = 1, Max = 100_000)]
    public int MaxEpochs { get; set; } = CoraDefaults.MfMaxEpochs;
    /// <summary>Stop after this many epochs without a better validation AUC (10).</summary>
    [Option("--mf-patience", "CF epochs without a better validation AUC before stopping.", Min = 1)]
    public int Patience { get; set; } = CoraDefaults.MfPatience;
    /// <summary>MF only: how a row's liked history enters the user embedding (<see cref="UserHistory"/>); null = MF's default
    /// (<see cref="CoraDefaults.MfUserHistory"/>). <c>none</c> is MF as CoLLM and CoRA train it; <c>cold</c> gives users unseen in
    /// training an embedding from their liked items; <c>blend</c> also refreshes known users with likes newer than the training
    /// rows. LightGCN and SASRec refuse any value but <c>none</c> (SASRec reads the history by design).</summary>
    [Option("--mf-history", "MF only: none (MF as CoRA trains it), cold (users unseen in training get an embedding from their liked history) or blend (also known users: half own, half history).")]
    public UserHistory? History { get; set; }
    /// <summary>Seed of the initialisation and shuffling (2023).</summary>
    public long Seed { get; set; } = CoraDefaults.Seed;

    /// <summary>LightGCN: propagation layers over the user-item graph (2). More layers smooth more; 2-3 is LightGCN's range.</summary>
    [Option("--lightgcn-layers", "LightGCN propagation layers.", Min = 0, Max = 16)]
    public int GraphLayers { get; set; } = CoraDefaults.LightGcnLayers;
    /// <summary>SASRec: self-attention blocks (2).</summary>
    [Option("--sasrec-blocks", "SASRec self-attention blocks.", Min = 1, Max = 16)]
    public int SequenceBlocks { get; set; } = CoraDefaults.SasRecBlocks;
    /// <summary>SASRec: the most recent liked items read (25, CoLLM's); older ones are dropped.</summary>
    [Option("--sasrec-length", "SASRec: most recent liked items read.", Min = 1, Max = 4096)]
    public int SequenceLength { get; set; } = CoraDefaults.SasRecMaxLength;
    /// <summary>SASRec: attention heads (1, SASRec's); must divide <see cref="EmbeddingDim"/>.</summary>
    [Option("--sasrec-heads", "SASRec attention heads; must divide the embedding size.", Min = 1, Max = 64)]
    public int SequenceHeads { get; set; } = CoraDefaults.SasRecHeads;
    /// <summary>SASRec: dropout in the blocks (0.2, SASRec's for MovieLens).</summary>
    [Option("--sasrec-dropout", "SASRec dropout.", Min = 0, Max = 0.99)]
    public double SequenceDropout { get; set; } = CoraDefaults.SasRecDropout;

    /// <summary><see cref="History"/>, or MF's default when it is null; a CF model other than MF reads <see cref="UserHistory.None"/>
    /// and refuses any other value given to it.</summary>
    public UserHistory HistoryFor(CollaborativeKind kind)
    {
        if (HistoryError(kind) is { } e) throw new ArgumentException("--mf-history " + e, nameof(History));
        return kind == CollaborativeKind.Mf ? History ?? CoraDefaults.MfUserHistory : UserHistory.None;
    }

    /// <summary>Why <see cref="History"/> cannot apply to <paramref name="kind"/>, or null where it can (MF, or no history asked for).</summary>
    internal string? HistoryError(CollaborativeKind kind) =>
        kind == CollaborativeKind.Mf || History is null or UserHistory.None ? null
        : $"{History.Value.ToString().ToLowerInvariant()} applies to MF only; {CollaborativeModels.DisplayName(kind)} reads no history: leave it unset.";
    /// <summary><see cref="EmbeddingDim"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public int EmbeddingDimFor(CollaborativeKind kind) => EmbeddingDim ?? DefaultsFor(kind).Dim;
    /// <summary><see cref="LearningRate"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public double LearningRateFor(CollaborativeKind kind) => LearningRate ?? DefaultsFor(kind).LearningRate;
    /// <summary><see cref="WeightDecay"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public double WeightDecayFor(CollaborativeKind kind) => WeightDecay ?? DefaultsFor(kind).WeightDecay;

    /// <summary>The defaults a CF model declares in its unit (<see cref="CollaborativeModels.All"/>).</summary>
    private static (int Dim, double LearningRate, double WeightDecay) DefaultsFor(CollaborativeKind kind)
    {
        var u = CollaborativeModels.Of(kind);
        return (u.DefaultEmbeddingDim, u.DefaultLearningRate, u.DefaultWeightDecay);
    }

    /// <summary>Every out-of-range value, by option name (prefixed with <paramref name="prefix"/>).</summary>
    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        var e = OptionChecks.Declared(this, prefix);
        int sasDim = EmbeddingDimFor(CollaborativeKind.SasRec);
        if (SequenceHeads >= 1 && sasDim >= 1 && sasDim % SequenceHeads != 0)
            e = e.Append(new OptionError(prefix + nameof(SequenceHeads), $"{SequenceHeads} must divide SASRec's {prefix}{nameof(EmbeddingDim)} ({sasDim})."));
        if (History is { } h && !Enum.IsDefined(h))
            e = e.Append(new OptionError(prefix + nameof(History), $"{(int)h} is not one of {string.Join(", ", Enum.GetNames<UserHistory>())}."));
        return e;
    }
}
