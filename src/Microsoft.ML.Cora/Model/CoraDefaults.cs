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
    /// <summary>Seed of every random choice (<see cref="CoraModelOptions.Seed"/>, <see cref="Training.TrainingOptions.Seed"/>, <see cref="CollaborativeFiltering.MatrixFactorizationOptions.Seed"/>).</summary>
    public const long Seed = 2023;
    /// <summary>The method trained (<see cref="CoraModelOptions.Method"/>): CoRA.</summary>
    public const CoraMethod Method = CoraMethod.Cora;

    // Training (the LLM-based methods)
    /// <summary>Default of <see cref="Training.TrainingOptions.Epochs"/>.</summary>
    public const int Epochs = 1;
    /// <summary>Default of <see cref="Training.TrainingOptions.BatchSize"/> (CoRA's public code trains with 8).</summary>
    public const int BatchSize = 8;
    /// <summary>Default of <see cref="Training.TrainingOptions.GradientAccumulation"/>.</summary>
    public const int GradientAccumulation = 1;
    /// <summary>Default of <see cref="Training.TrainingOptions.LearningRate"/> (CoRA's public code).</summary>
    public const double LearningRate = 1e-3;
    /// <summary>Default of <see cref="Training.TrainingOptions.WeightDecay"/> (CoRA's public code; not applied to biases and norms).</summary>
    public const double WeightDecay = 1e-3;
    /// <summary>Default of <see cref="Training.TrainingOptions.Warmup"/>.</summary>
    public const double Warmup = 0.05;
    /// <summary>Default of <see cref="Training.TrainingOptions.MinLearningRate"/> (cosine to 0).</summary>
    public const double MinLearningRate = 0;
    /// <summary>Default of <see cref="Training.TrainingOptions.ValidateEvery"/>.</summary>
    public const int ValidateEvery = 200;
    /// <summary>Default of <see cref="Training.TrainingOptions.UserDropout"/> (every row keeps its trained user).</summary>
    public const double UserDropout = 0;
    /// <summary>Default of <see cref="Training.TrainingOptions.Ema"/> (validation reads the weights themselves, no average).</summary>
    public const double Ema = 0;
    /// <summary>Default of <see cref="Training.TrainingOptions.Patience"/>.</summary>
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
    /// <summary>Share of the training rows held out for validation when no validation data is given (the ML.NET trainer's <c>ValidationFraction</c>).</summary>
    public const double ValidationFraction = 0.1;

    // Collaborative weights and baselines
    /// <summary>Default of <see cref="CoraModelOptions.Rank"/>: r of CoRA's collaborative weights.</summary>
    public const int Rank = 16;
    /// <summary>Default of <see cref="CoraModelOptions.Alpha"/> (the low-rank term is scaled by alpha / r).</summary>
    public const double Alpha = 32;
    /// <summary>Default of <see cref="CoraModelOptions.Dropout"/> (dropout on the low-rank inputs).</summary>
    public const double Dropout = 0.05;
    /// <summary>Default of <see cref="CoraModelOptions.LoraRank"/> (the LoRA of LLM-LoRA and CoLLM).</summary>
    public const int LoraRank = 8;
    /// <summary>Default of <see cref="CoraModelOptions.LoraAlpha"/>.</summary>
    public const double LoraAlpha = 16;

    // Query generator (CoRA's public code)
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.NumQueries"/>.</summary>
    public const int GeneratorQueries = 4;
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.NumLayers"/>.</summary>
    public const int GeneratorLayers = 8;
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.Hidden"/>.</summary>
    public const int GeneratorHidden = 512;
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.Heads"/>.</summary>
    public const int GeneratorHeads = 8;
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.FeedForward"/>.</summary>
    public const int GeneratorFeedForward = 3072;
    /// <summary>Default of <see cref="Methods.QueryGeneratorOptions.Dropout"/>.</summary>
    public const double GeneratorDropout = 0.1;
    /// <summary>MF's default of <see cref="Methods.QueryGeneratorOptions.CfTokenRms"/>: 0, the raw token, as CoRA's public code reads
    /// it (MF's user and item halves sit at like scales; read raw, CoRA-MF scores higher than at 0.4 at every seed measured,
    /// docs/results.md).</summary>
    public const double MfCfTokenRms = 0;
    /// <summary>LightGCN's default of <see cref="Methods.QueryGeneratorOptions.CfTokenRms"/>: each half scaled to RMS 0.4 (read raw,
    /// CoRA-LGCN loses about 0.03 AUC).</summary>
    public const double LightGcnCfTokenRms = 0.4;
    /// <summary>SASRec's default of <see cref="Methods.QueryGeneratorOptions.CfTokenRms"/>: each half scaled to RMS 0.4 (SASRec's item
    /// half sits near RMS 0.007 against its users' 1.7: read raw, the generator takes it for noise and gives every sample one A).</summary>
    public const double SasRecCfTokenRms = 0.4;
    /// <summary>Training rows sampled to set the scale of the CF token's halves (QueryGeneratorOptions.CfTokenRms).</summary>
    public const int CfTokenCalibrationRows = 4096;

    // MF stage (CoLLM/CoRA)
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.EmbeddingDim"/> (CoLLM's and CoRA's MF stage).</summary>
    public const int MfEmbeddingDim = 256;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.LearningRate"/>.</summary>
    public const double MfLearningRate = 1e-3;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.WeightDecay"/>.</summary>
    public const double MfWeightDecay = 1e-4;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.BatchSize"/>.</summary>
    public const int MfBatchSize = 2048;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.MaxEpochs"/>.</summary>
    public const int MfMaxEpochs = 200;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.Patience"/>.</summary>
    public const int MfPatience = 10;
    /// <summary>MF's default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.History"/>.</summary>
    public const CollaborativeFiltering.UserHistory MfUserHistory = CollaborativeFiltering.UserHistory.None;
    /// <summary>Ridge penalty of the history map (<see cref="CollaborativeFiltering.UserHistory"/>), as a multiple of the mean diagonal
    /// of the Gram matrix of the training users' mean liked-item embeddings (4: the mean direction, which carries most of the Gram's
    /// trace, is kept and the weak directions are damped; on ML-1M's MF stage, multiples from 4 to 12 score alike on validation
    /// AUC, 0.04 and 40 lower).</summary>
    public const double MfHistoryRidge = 4;
    // The other CF stages (the paper's CoRA-LGCN and CoRA-SAS) train with the MF stage's settings above plus these.
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.GraphLayers"/> (LightGCN's propagation layers).</summary>
    public const int LightGcnLayers = 2;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.SequenceBlocks"/> (SASRec's transformer blocks).</summary>
    public const int SasRecBlocks = 2;
    // SASRec's own size, step and regularisation: CoLLM's tuned ML-1M SASRec (baseline_train_sasrec.py).
    /// <summary>SASRec's embedding width (CoLLM's tuned ML-1M SASRec; the MF stage's 256 over-fits within three epochs).</summary>
    public const int SasRecEmbeddingDim = 64;
    /// <summary>SASRec's learning rate (CoLLM's tuned ML-1M SASRec).</summary>
    public const double SasRecLearningRate = 1e-2;
    /// <summary>SASRec's L2 weight decay (CoLLM's tuned ML-1M SASRec).</summary>
    public const double SasRecWeightDecay = 1e-2;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.SequenceLength"/>: the last items of a history SASRec reads.</summary>
    public const int SasRecMaxLength = 25;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.SequenceHeads"/>.</summary>
    public const int SasRecHeads = 1;
    /// <summary>Default of <see cref="CollaborativeFiltering.MatrixFactorizationOptions.SequenceDropout"/>.</summary>
    public const double SasRecDropout = 0.2;

    // Recommendations: how many items, and how many CF candidates the model re-ranks
    /// <summary>Items a recommendation returns (top-K).</summary>
    public const int RecommendTop = 10;
    /// <summary>Candidates the CF stage retrieves for the model to re-rank in a recommendation.</summary>
    public const int RecommendCandidates = 100;

    // Benchmarks and doctor
    /// <summary>Timed repeats of a <c>cora bench</c> workload.</summary>
    public const int BenchRepeats = 5;
    /// <summary>Seconds <c>cora doctor</c> spends timing a matrix product per dtype.</summary>
    public const double DoctorMatmulSeconds = 1.0;

    // Where and how
    /// <summary>Where a model trains and scores: <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c>.</summary>
    public const string Device = "cpu";
    /// <summary>dtype of the frozen LLM: <c>auto</c> (bf16 on CUDA, fp32 on the CPU), <c>bf16</c>, <c>fp16</c> or <c>fp32</c>.</summary>
    public const string LlmDtype = "auto";
    /// <summary>dtype of the query generator's matrix products (<see cref="Runtime.CoraDevice.ResolveGeneratorDtype"/>): auto = whichever of
    /// bf16 and fp32 this CPU runs faster (timed, <see cref="Runtime.CpuChoices.GeneratorDtype"/>), fp32 on a GPU.</summary>
    public const string GeneratorDtype = "auto";
    /// <summary>The generator products of <c>cora quickstart</c>: fp32, so that its metric table (the README's) comes out the same on
    /// every CPU; <see cref="GeneratorDtype"/>'s auto would pick bf16 on some CPUs and fp32 on others. bf16 is faster and moved the
    /// quickstart's AUC within its run-to-run spread (0.7185 against 0.7246 on 2 Zen 4 cores); pass <c>--generator-dtype auto</c> for it.</summary>
    public const string QuickstartGeneratorDtype = "fp32";
}
