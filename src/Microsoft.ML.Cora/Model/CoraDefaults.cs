using Microsoft.ML.Cora.Methods;
namespace Microsoft.ML.Cora;

/// <summary>
/// Every default of Cora, defined once. The option records (<see cref="CoraModelOptions"/>,
/// <see cref="Methods.QueryGeneratorOptions"/>, <see cref="Training.TrainingOptions"/>,
/// <see cref="CollaborativeFiltering.MatrixFactorizationOptions"/>), the ML.NET options and the CLI all read them from here;
/// each option's documentation says how to choose it.
/// </summary>
public static class CoraDefaults
{
    public const long Seed = 2023;
    public const CoraMethod Method = CoraMethod.Cora;

    // Training (the LLM-based methods)
    public const int Epochs = 1;
    public const int BatchSize = 8;
    public const int GradientAccumulation = 1;
    public const double LearningRate = 1e-3;
    public const double WeightDecay = 1e-3;
    public const double Warmup = 0.05;
    public const double MinLearningRate = 0;
    public const int ValidateEvery = 200;
    public const int Patience = 5;
    /// <summary>Rows per LLM forward when scoring. 8 is fastest on the CPU (the activations of a small LLM stay in cache; the
    /// generator still sees <see cref="Runtime.ComputePlan.GeneratorChunkRows"/> rows at once): 8 gave 112-132 rows/s against
    /// 97-102 for 16 and 98 for 4 on 2 cores with stories260K. On a GPU use 64 or more.</summary>
    public const int ScoringBatchSize = 8;
    /// <summary>Rows per step of the quickstart's CoRA run and of <c>cora bench train-step</c> on a real model (the and the
    /// README table's setting; the trainer's own default stays <see cref="BatchSize"/>).</summary>
    public const int ReferenceBatchSize = 16;
    /// <summary>Rows a Transform cursor reads ahead and scores together (rounded up to whole scoring batches), so that rows are
    /// grouped by prompt length across them and the generator sees wide chunks (the memory held is this many rows and scores).</summary>
    public const int ScoringReadAheadRows = 256;
    public const double ValidationFraction = 0.1;

    // Collaborative weights and baselines
    public const int Rank = 16;
    public const double Alpha = 32;
    public const double Dropout = 0.05;
    public const int LoraRank = 8;
    public const double LoraAlpha = 16;

    // Query generator (CoRA's public code)
    public const int GeneratorQueries = 4;
    public const int GeneratorLayers = 8;
    public const int GeneratorHidden = 512;
    public const int GeneratorHeads = 8;
    public const int GeneratorFeedForward = 3072;
    public const double GeneratorDropout = 0.1;
    /// <summary>The RMS of each half of the CF token as the generator reads it (QueryGeneratorOptions.CfTokenRms; 0 = raw).</summary>
    public const double CfTokenRms = 0.4;
    /// <summary>Training rows sampled to set the scale of the CF token's halves (QueryGeneratorOptions.CfTokenRms).</summary>
    public const int CfTokenCalibrationRows = 4096;

    // MF stage (CoLLM/CoRA)
    public const int MfEmbeddingDim = 256;
    public const double MfLearningRate = 1e-3;
    public const double MfWeightDecay = 1e-4;
    public const int MfBatchSize = 2048;
    public const int MfMaxEpochs = 200;
    public const int MfPatience = 10;
    // The other CF stages (the paper's CoRA-LGCN and CoRA-SAS) train with the MF stage's settings above plus these.
    public const int LightGcnLayers = 2;
    public const int SasRecBlocks = 2;
    // SASRec's own size, step and regularisation: CoLLM's tuned ML-1M SASRec (baseline_train_sasrec.py: d 64, Adam lr 1e-2 with
    // L2 1e-2, the last 25 items). With the MF stage's 256 / 1e-3 / 1e-4 / 50 it over-fits within 3 epochs (valid AUC 0.61-0.63
    // against 0.686 with these on the CoLLM split).
    public const int SasRecEmbeddingDim = 64;
    public const double SasRecLearningRate = 1e-2;
    public const double SasRecWeightDecay = 1e-2;
    public const int SasRecMaxLength = 25;
    public const int SasRecHeads = 1;
    public const double SasRecDropout = 0.2;

    // Recommendations: how many items, and how many CF candidates the model re-ranks
    public const int RecommendTop = 10;
    public const int RecommendCandidates = 100;

    // Benchmarks and doctor
    public const int BenchRepeats = 5;
    public const double DoctorMatmulSeconds = 1.0;

    // Where and how
    public const string Device = "cpu";
    public const string LlmDtype = "auto";
    /// <summary>dtype of the query generator's matrix products (<see cref="Runtime.CoraDevice.ResolveGeneratorDtype"/>): auto = whichever of
    /// bf16 and fp32 this CPU runs faster (timed, <see cref="Runtime.CpuChoices.GeneratorDtype"/>), fp32 on a GPU.</summary>
    public const string GeneratorDtype = "auto";
    /// <summary>The generator products of <c>cora quickstart</c>: fp32, so that its metric table (the README's) comes out the same on
    /// every CPU; <see cref="GeneratorDtype"/>'s auto would pick bf16 on some CPUs and fp32 on others. bf16 is faster and moved the
    /// quickstart's AUC within its run-to-run spread (0.7185 against 0.7246 on 2 Zen 4 cores); pass <c>--generator-dtype auto</c> for it.</summary>
    public const string QuickstartGeneratorDtype = "fp32";
}
