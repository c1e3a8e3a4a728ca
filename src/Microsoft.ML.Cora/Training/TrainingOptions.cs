using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.IO;
using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>Optimisation settings for the LLM-based methods (defaults in <see cref="CoraDefaults"/>; each says how to choose it).</summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training rows (1). More epochs help small data; watch validation AUC.</summary>
    [Option("--epochs", "Passes over the training rows. Start with 1; raise while validation AUC improves.", Min = 1, Max = 10_000)]
    public int Epochs { get; set; } = CoraDefaults.Epochs;
    /// <summary>Rows per forward pass (8). Raise it on a GPU; memory grows with batch x prompt length.</summary>
    [Option("--batch-size", "Rows per training step. Memory grows with batch x prompt length.", Min = 1, Max = 1 << 16)]
    public int BatchSize { get; set; } = CoraDefaults.BatchSize;
    /// <summary>Batches whose gradients are summed before a step (1); effective batch = BatchSize x this.</summary>
    [Option("--grad-accum", "Batches summed per optimiser step (effective batch = batch x this).", Min = 1, Max = 1 << 16)]
    public int GradientAccumulation { get; set; } = CoraDefaults.GradientAccumulation;
    /// <summary>Peak AdamW learning rate (1e-3). Lower it (3e-4) if the loss jumps; raise it for tiny data.</summary>
    [Option("--lr", "Peak AdamW learning rate; lower it (3e-4) if the loss jumps.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; set; } = CoraDefaults.LearningRate;
    /// <summary>AdamW weight decay (1e-3), not applied to biases and 1-D parameters.</summary>
    [Option("--weight-decay", "AdamW weight decay (not on biases and 1-D parameters).", Min = 0, Max = 10)]
    public double WeightDecay { get; set; } = CoraDefaults.WeightDecay;
    /// <summary>Linear warm-up before the cosine decay: a fraction of all steps when below 1, else a step count (0.05).</summary>
    [Option("--warmup", "Warm-up: a fraction of all steps when below 1, else a step count.", Min = 0, Max = 1e9)]
    public double Warmup { get; set; } = CoraDefaults.Warmup;
    /// <summary>Floor of the cosine decay (0): the learning rate falls from the peak to this, not to zero. CoRA's public recipe
    /// uses 8e-5 under a peak of 1e-3 over long runs, where the last steps still move the weights. At most the peak.</summary>
    [Option("--min-lr", "Floor of the cosine decay (0 = decay to zero; e.g. 8e-5 under --lr 1e-3 for long runs).", Min = 0, Max = 10)]
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]   // checkpoints made before it existed still resume
    public double MinLearningRate { get; set; } = CoraDefaults.MinLearningRate;
    /// <summary>The share of training rows scored as if their user were unseen in training (0): the CF stage gives such a row
    /// what it gives a new user (MF: the zero vector, or with <c>--mf-history cold</c> or <c>blend</c> the estimate from the row's
    /// liked history; LightGCN: the zero vector), so the LLM method also learns the rows it will meet for users who arrive after
    /// training. Raise it (0.1 to 0.3) when many scored rows belong to new users; 0 leaves every row's user as trained; at most 0.9. Applies to
    /// CoLLM and CoRA over MF or LightGCN (SASRec reads no user id; MF alone and LLM-LoRA read no CF user).</summary>
    [Option("--user-dropout", "Share of training rows scored as if their user were new (0 = none; 0.1-0.3 when many users are new).", Min = 0, Max = 0.9)]
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public double UserDropout { get; set; } = CoraDefaults.UserDropout;
    /// <summary>Decay of an exponential moving average of the trained weights (0 = none): each validation, and so the weights kept,
    /// reads the average instead of the last step's weights, which evens out the noise of single steps; training itself goes on from
    /// the weights. The average spans about 1 / (1 - decay) steps: 0.99 to 0.999 for runs of thousands of steps, less for short
    /// runs; below 1. It is saved with each checkpoint, so a resumed run continues it.</summary>
    [Option("--ema", "Decay of a moving average of the weights that validation and the kept model read (0 = none; 0.99-0.999 for long runs).", Min = 0, Max = 0.9999)]
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public double Ema { get; set; } = CoraDefaults.Ema;
    /// <summary>Validate every N optimiser steps (and at the end of each epoch) (200). Lower it for short runs.</summary>
    [Option("--validate-every", "Validate every N optimiser steps (and at each epoch's end).", Min = 1)]
    public int ValidateEvery { get; set; } = CoraDefaults.ValidateEvery;
    /// <summary>Validation rows: a fixed random half of valid (CoRA's "valid_small"), capped at this (0 = no cap).</summary>
    [Option("--max-valid-rows", "Cap on validation rows used at each validation (0 = half of valid).", Min = 0)]
    public int MaxValidationRows { get; set; } = 0;
    /// <summary>Stop after this many validations without a better AUC (5; 0 = never stop early).</summary>
    [Option("--patience", "Stop after this many validations without a better AUC (0 = never).", Min = 0)]
    public int Patience { get; set; } = CoraDefaults.Patience;
    /// <summary>Use at most this many training rows (0 = all): a seeded random sample, kept in file order.</summary>
    [Option("--max-rows", "Use at most N training rows (0 = all; a seeded random sample).", Min = 0)]
    public int MaxTrainRows { get; set; } = 0;
    /// <summary>Seed of the sampling, shuffling and dropout (2023).</summary>
    [Option("--seed", "One seed for initialisation, sampling, shuffling and dropout.")]
    public long Seed { get; set; } = CoraDefaults.Seed;
    /// <summary>Folder for resumable checkpoints (written atomically at each validation); null = none.</summary>
    [Option("--checkpoint-dir", "Resumable checkpoints; a rerun with the same folder and the same data and options resumes.")]
    public string? CheckpointDirectory { get; set; }
    /// <summary>Stop after this many optimiser steps (0 = no limit); for tests and quick runs.</summary>
    [Option("--max-steps", "Stop after N optimiser steps (0 = no limit).", Min = 0)]
    public int MaxSteps { get; set; } = 0;
    /// <summary>Stop training after this many minutes of this process's training loop (0 = no limit): the weights are validated
    /// once more and the best kept, as an early stop. With <see cref="CheckpointDirectory"/> a stopped run resumes later.</summary>
    [Option("--max-minutes", "Stop training after N minutes (0 = no limit); the best weights so far are kept.", Min = 0, Max = 1e7)]
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public double MaxMinutes { get; set; }
    /// <summary>Rows per LLM forward when scoring (8, fastest on the CPU; the generator still sees 128-row chunks). On a GPU use 64 or more.</summary>
    [Option("--scoring-batch-size", "Rows per LLM forward when scoring.", Min = 1, Max = 1 << 16)]
    public int ScoringBatchSize { get; set; } = CoraDefaults.ScoringBatchSize;

    /// <summary>Named recipes for <c>cora train --preset</c>: CoRA's public schedule (batch 16, 200 warm-up steps, cosine to 8e-5,
    /// weight decay 1e-3, validation every 250 steps on 1,000 rows, patience 8) over three passes of the full training split, under
    /// a time limit that leaves room for the CF stage and the final evaluation in two hours. <c>cpu-2h</c> and <c>gpu-2h</c> differ
    /// in how far they can go: the GPU's passes are cheap, so it gets ten and the limit decides. Each call returns new instances.</summary>
    public static IReadOnlyDictionary<string, TrainingOptions> Presets => new Dictionary<string, TrainingOptions>
    {
        ["cpu-2h"] = Recipe(epochs: 3),
        ["gpu-2h"] = Recipe(epochs: 10) with { ScoringBatchSize = 64 },
    };

    private static TrainingOptions Recipe(int epochs) => new()
    {
        Epochs = epochs, BatchSize = 16, LearningRate = 1e-3, Warmup = 200, MinLearningRate = 8e-5, WeightDecay = 1e-3,
        ValidateEvery = 250, MaxValidationRows = 1000, Patience = 8, MaxMinutes = 105,
    };

    /// <summary>Why <see cref="UserDropout"/> cannot apply to this method and CF model, or null where it does: only CoLLM and CoRA
    /// read a CF user embedding, and SASRec builds it from the liked history, not from the user id.</summary>
    internal static string? UserDropoutError(Methods.CoraMethod method, CollaborativeFiltering.CollaborativeKind cf, double userDropout) =>
        UserDropoutError(method, cf == CollaborativeFiltering.CollaborativeKind.SasRec ? "SASRec" : cf.ToString(), cf == CollaborativeFiltering.CollaborativeKind.SasRec, userDropout);

    /// <summary>The same rule for a CF model as built (<see cref="CollaborativeFiltering.ICollaborativeModel.UserFromHistory"/>),
    /// so that a CF model of one's own that builds the user from the history is refused as SASRec is.</summary>
    internal static string? UserDropoutError(Methods.CoraMethod method, string cfName, bool userFromHistory, double userDropout) =>
        userDropout <= 0 ? null
        : method is not (Methods.CoraMethod.Collm or Methods.CoraMethod.Cora) ? $"{userDropout:G3} applies to CoLLM and CoRA, which read the CF user embedding; method {method} reads none: leave it at 0."
        : userFromHistory ? $"{userDropout:G3} applies over CF models that look the user up by id (MF, LightGCN); {cfName} builds the user from the liked history, not the user id: leave it at 0."
        : null;

    /// <summary>Every out-of-range value, by option name.</summary>
    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        return OptionChecks.Declared(this, prefix)
            .Concat(MinLearningRate > LearningRate
                ? new[] { new OptionError(prefix + nameof(MinLearningRate), $"{MinLearningRate:G4} is above the peak learning rate {LearningRate:G4}; the floor must be at most the peak.") }
                : Array.Empty<OptionError>())
            .Concat(CheckpointDirectory is { } d && (File.Exists(d) || d.Trim().Length == 0)
                ? new[] { new OptionError(prefix + nameof(CheckpointDirectory), $"'{IO.ErrorText.Elide(d)}' is a file (or empty), not a folder for checkpoints.") }
                : Array.Empty<OptionError>());
    }
}
