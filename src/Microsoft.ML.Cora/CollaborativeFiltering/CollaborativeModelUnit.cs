using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// One CF model as a unit: its kind, the name saved models and the CLI use (with aliases), the name messages use, its defaults
/// (embedding size, learning rate, weight decay, the RMS at which CoRA's generator reads its token), how it trains and how it is
/// rebuilt from a saved model. Each CF model declares its own (<c>Registration</c>) and <see cref="CollaborativeModels.All"/> lists
/// them; nothing else switches on the kind.
/// </summary>
public sealed record CollaborativeModelUnit(
    CollaborativeKind Kind, string Name, string DisplayName, IReadOnlyList<string> Aliases,
    int DefaultEmbeddingDim, double DefaultLearningRate, double DefaultWeightDecay, double DefaultCfTokenRms,
    Func<IReadOnlyList<Interaction>, IReadOnlyList<Interaction>, MatrixFactorizationOptions?, Action<string>?, CancellationToken, ICollaborativeModel> Train,
    Func<Func<string, Tensor>, ICollaborativeModel> Import);
